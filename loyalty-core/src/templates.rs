//! Templates: a sender's event ready to use. Each names its event type, the sender's own
//! authentication scheme and a JSONata mapping into the canonical event, with a sample payload
//! from the sender's documentation or SDK fixtures (`loyalty-core/templates/README.md` says
//! which). A connector created from a template takes all three; fields given beside the
//! template win whole.

use crate::auth::AuthSpec;
use crate::connector::{ConnectorSpec, EventType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A sender's event, ready to become a connector.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    /// `<sender>.<event>`, stable: connectors are created with it.
    pub id: &'static str,
    pub name: &'static str,
    pub sender: &'static str,
    pub event_type: EventType,
    /// The `auth.type` the sender's deliveries verify with.
    pub auth_type: &'static str,
    /// A JSONata expression from one item of the sender's body to the canonical event.
    pub mapping: &'static str,
    sample: &'static str,
}

macro_rules! template {
    ($id:literal, $name:literal, $sender:literal, $event_type:expr, $auth_type:literal) => {
        Template {
            id: $id,
            name: $name,
            sender: $sender,
            event_type: $event_type,
            auth_type: $auth_type,
            mapping: include_str!(concat!("../templates/", $id, ".jsonata")),
            sample: include_str!(concat!("../templates/", $id, ".sample.json")),
        }
    };
}

const TEMPLATES: &[Template] = &[
    template!(
        "shopify.orders-create",
        "Shopify order created",
        "shopify",
        EventType::EcommercePurchase,
        "shopify"
    ),
    template!(
        "shopify.refunds-create",
        "Shopify refund created",
        "shopify",
        EventType::EcommerceRefund,
        "shopify"
    ),
    template!(
        "stripe.checkout-session-completed",
        "Stripe Checkout session completed",
        "stripe",
        EventType::EcommercePurchase,
        "stripe"
    ),
    template!(
        "stripe.charge-refunded",
        "Stripe charge refunded",
        "stripe",
        EventType::EcommerceRefund,
        "stripe"
    ),
    template!(
        "woocommerce.order-created",
        "WooCommerce order created",
        "woocommerce",
        EventType::EcommercePurchase,
        "woocommerce"
    ),
    template!(
        "typeform.form-response",
        "Typeform form response",
        "typeform",
        EventType::CustomBasic,
        "typeform"
    ),
    template!(
        "hubspot.contact-event",
        "HubSpot contact event",
        "hubspot",
        EventType::CustomBasic,
        "hubspot"
    ),
    template!(
        "segment.track",
        "Segment track call",
        "segment",
        EventType::CustomBasic,
        "segment"
    ),
    template!(
        "github.push",
        "GitHub push",
        "github",
        EventType::CustomBasic,
        "github"
    ),
    // A tag in a browser cannot keep a secret: a query token is what it can send.
    template!(
        "gtm.custom-event",
        "Google Tag Manager custom event",
        "gtm",
        EventType::CustomBasic,
        "queryToken"
    ),
];

/// Every template, in a stable order.
pub fn all() -> &'static [Template] {
    TEMPLATES
}

/// The template with this id.
pub fn find(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|template| template.id == id)
}

impl Template {
    /// The sample payload, as the sender documents it (an object, or the array it posts).
    pub fn sample_payload(&self) -> Value {
        serde_json::from_str(self.sample).expect("template samples are valid JSON")
    }

    /// The template's authentication with its secrets left out (so that they are generated).
    pub fn auth(&self) -> AuthSpec {
        AuthSpec::of_scheme(self.auth_type).expect("template auth types are schemes")
    }

    /// What the template list shows.
    pub fn view(&self) -> TemplateView {
        TemplateView {
            id: self.id,
            name: self.name,
            sender: self.sender,
            event_type: self.event_type,
            auth: TemplateAuth {
                kind: self.auth_type,
            },
            mapping: self.mapping,
            sample_payload: self.sample_payload(),
        }
    }
}

/// A template as the API lists it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    pub id: &'static str,
    pub name: &'static str,
    pub sender: &'static str,
    pub event_type: EventType,
    pub auth: TemplateAuth,
    pub mapping: &'static str,
    pub sample_payload: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct TemplateAuth {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A connector as an admin writes it with a template: every field of [`ConnectorSpec`] may be
/// left out, and one given replaces the template's whole (an `auth` given is the whole auth).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorFromTemplate {
    pub template: String,
    pub name: Option<String>,
    pub event_type: Option<EventType>,
    pub auth: Option<AuthSpec>,
    pub mapping: Option<String>,
    #[serde(default)]
    pub test_mode: bool,
    pub max_event_age_days: Option<u32>,
    pub public_base_url: Option<String>,
}

impl ConnectorFromTemplate {
    /// A connector from `template` with nothing given beside it.
    pub fn new(template: impl Into<String>) -> Self {
        ConnectorFromTemplate {
            template: template.into(),
            name: None,
            event_type: None,
            auth: None,
            mapping: None,
            test_mode: false,
            max_event_age_days: None,
            public_base_url: None,
        }
    }

    /// The connector spec: the template's fields where none is given.
    pub fn into_spec(self) -> Result<ConnectorSpec> {
        let template = find(&self.template).ok_or_else(|| {
            Error::invalid(
                "/template",
                format!("no template {:?}: see the list of templates", self.template),
            )
        })?;
        Ok(ConnectorSpec {
            name: self.name.unwrap_or_else(|| template.name.to_owned()),
            event_type: self.event_type.unwrap_or(template.event_type),
            auth: self.auth.unwrap_or_else(|| template.auth()),
            mapping: self.mapping.unwrap_or_else(|| template.mapping.to_owned()),
            test_mode: self.test_mode,
            max_event_age_days: self.max_event_age_days,
            public_base_url: self.public_base_url,
        })
    }
}
