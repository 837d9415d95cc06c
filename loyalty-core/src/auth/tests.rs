//! The schemes against their senders' published vectors where there are some, else against
//! an independent implementation (Python's `hmac`), so that the code is not checking itself.

use super::*;
use crate::secret::{Secret, TokenHash};
use chrono::TimeZone;

fn parts<'a>(
    query: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
    body: &'a [u8],
) -> RequestParts<'a> {
    RequestParts::post("/v1/incoming/con_test", query, headers, body)
}

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_614_265_330, 0).unwrap()
}

#[test]
fn github_published_vector() {
    assert_eq!(
        hub_signature("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let auth = ConnectorAuth::HubSignature {
        header: DEFAULT_SIGNATURE_HEADER.into(),
        secrets: vec![
            Secret::new("old secret"),
            Secret::new("It's a Secret to Everybody"),
        ],
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        prefix: None,
        delivery_id_header: None,
    };
    let signature = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let headers = [("x-hub-signature-256", &signature[..])];
    assert!(auth
        .verify(&parts("", &headers, b"Hello, World!"), now())
        .is_ok());
    assert_eq!(
        auth.verify(&parts("", &headers, b"Hello, World! "), now()),
        Err(AuthFailure::WrongCredentials)
    );
    let upper = b"sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    assert!(matches!(
        auth.verify(
            &parts("", &[("X-Hub-Signature-256", &upper[..])], b"Hello, World!"),
            now()
        ),
        Err(AuthFailure::Malformed(_))
    ));
    assert!(matches!(
        auth.verify(&parts("", &[], b"Hello, World!"), now()),
        Err(AuthFailure::Missing(_))
    ));
}

#[test]
fn standard_webhooks_specification_vector() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"test": 2432232314}"#;
    let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert_eq!(
        standard_webhooks_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body)
            .unwrap(),
        expected
    );
    let auth = ConnectorAuth::StandardWebhooks {
        secrets: vec![Secret::new(secret)],
        tolerance_seconds: 300,
    };
    let signature = format!("v1,bm90IGl0 {expected}");
    let headers = [
        ("webhook-id", &b"msg_p5jXN8AQM9LWM0D4loKWxJek"[..]),
        ("webhook-timestamp", &b"1614265330"[..]),
        ("webhook-signature", signature.as_bytes()),
    ];
    let ok = auth.verify(&parts("", &headers, body), now()).unwrap();
    assert_eq!(
        ok.delivery_id.as_deref(),
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
    );
    let late = now() + chrono::Duration::seconds(301);
    assert_eq!(
        auth.verify(&parts("", &headers, body), late),
        Err(AuthFailure::OutsideTolerance(300))
    );
    let early = now() - chrono::Duration::seconds(301);
    assert_eq!(
        auth.verify(&parts("", &headers, body), early),
        Err(AuthFailure::OutsideTolerance(300))
    );
    assert_eq!(
        auth.verify(&parts("", &headers, br#"{"test":2432232314}"#), now()),
        Err(AuthFailure::WrongCredentials)
    );
}

#[test]
fn query_token_single_exact_and_case_sensitive() {
    let auth = ConnectorAuth::QueryToken {
        param: "token".into(),
        token_hash: TokenHash::of("s3cret-token"),
    };
    let body = b"{}";
    assert!(auth
        .verify(&parts("token=s3cret-token&test=true", &[], body), now())
        .is_ok());
    assert!(auth
        .verify(&parts("token=s3cret%2Dtoken", &[], body), now())
        .is_ok());
    assert_eq!(
        auth.verify(&parts("token=S3CRET-TOKEN", &[], body), now()),
        Err(AuthFailure::WrongCredentials)
    );
    assert_eq!(
        auth.verify(&parts("token=s3cret-toke", &[], body), now()),
        Err(AuthFailure::WrongCredentials)
    );
    assert!(matches!(
        auth.verify(
            &parts("token=s3cret-token&token=s3cret-token", &[], body),
            now()
        ),
        Err(AuthFailure::Duplicated(_))
    ));
    assert!(matches!(
        auth.verify(&parts("", &[], body), now()),
        Err(AuthFailure::Missing(_))
    ));
}

#[test]
fn header_token_any_case_name_once() {
    let auth = ConnectorAuth::HeaderToken {
        header: "X-Authorization".into(),
        token_hash: TokenHash::of("s3cret-token"),
    };
    assert!(auth
        .verify(
            &parts("", &[("x-authorization", &b"s3cret-token"[..])], b""),
            now()
        )
        .is_ok());
    assert!(matches!(
        auth.verify(
            &parts(
                "",
                &[
                    ("x-authorization", &b"s3cret-token"[..]),
                    ("X-Authorization", &b"s3cret-token"[..])
                ],
                b""
            ),
            now()
        ),
        Err(AuthFailure::Duplicated(_))
    ));
    assert_eq!(
        auth.verify(
            &parts("", &[("x-authorization", &b"wrong-token"[..])], b""),
            now()
        ),
        Err(AuthFailure::WrongCredentials)
    );
}

#[test]
fn left_out_secrets_are_generated_once_and_kept_on_replace() {
    let spec = AuthSpec::QueryToken {
        param: None,
        token: None,
    };
    let (auth, generated) = ConnectorAuth::from_spec(spec.clone(), None, None).unwrap();
    let token = generated.token.unwrap();
    let query = format!("token={token}");
    assert!(auth.verify(&parts(&query, &[], b""), now()).is_ok());
    let (kept, generated_again) = ConnectorAuth::from_spec(spec, Some(&auth), None).unwrap();
    assert!(generated_again.is_empty());
    assert!(kept.verify(&parts(&query, &[], b""), now()).is_ok());
    let debug = format!("{auth:?}");
    assert!(!debug.contains(&token));
}

/// HMAC by Python's standard library: an implementation that shares nothing with ours.
fn python_hmac(algorithm: &str, key: &[u8], message: &[u8], encoding: &str) -> String {
    let script = "import base64, hashlib, hmac, sys\n\
        d = hmac.new(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), getattr(hashlib, sys.argv[3])).digest()\n\
        print(d.hex() if sys.argv[4] == 'hex' else base64.b64encode(d).decode(), end='')";
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &hex::encode(key),
            &hex::encode(message),
            algorithm,
            encoding,
        ])
        .output()
        .expect("these tests compute signatures with python3, which must be installed");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn auth_of(json: serde_json::Value) -> ConnectorAuth {
    let spec: AuthSpec = serde_json::from_value(json).unwrap();
    ConnectorAuth::from_spec(spec, None, None).unwrap().0
}

/// The checks every scheme must pass, given a correctly signed request: it verifies with
/// the right secret (the second of two: rotation), and fails with a wrong secret, a tampered
/// body, each of its headers missing, and each of its headers given twice.
fn check_scheme(
    scheme: serde_json::Value,
    headers: &[(&str, &[u8])],
    body: &[u8],
    now: DateTime<Utc>,
) -> Authenticated {
    let mut with_rotation = scheme.clone();
    with_rotation["secrets"] = serde_json::json!(["an old secret", scheme["secrets"][0]]);
    let auth = auth_of(with_rotation);
    let ok = auth
        .verify(&parts("", headers, body), now)
        .unwrap_or_else(|e| panic!("{scheme}: {e}"));
    let mut wrong = scheme.clone();
    wrong["secrets"] = serde_json::json!(["not the secret"]);
    assert_eq!(
        auth_of(wrong).verify(&parts("", headers, body), now),
        Err(AuthFailure::WrongCredentials),
        "{scheme}: wrong secret"
    );
    let mut tampered = body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        auth.verify(&parts("", headers, &tampered), now),
        Err(AuthFailure::WrongCredentials),
        "{scheme}: tampered body"
    );
    for (index, (name, _)) in headers.iter().enumerate() {
        let mut without = headers.to_vec();
        without.remove(index);
        let failure = auth.verify(&parts("", &without, body), now);
        let optional = name.to_ascii_lowercase().contains("delivery")
            || name.to_ascii_lowercase().ends_with("-id")
            || name.eq_ignore_ascii_case("X-Zendesk-Webhook-Invocation-Id");
        if optional {
            assert!(failure.is_ok(), "{scheme}: a delivery id is optional");
        } else {
            assert_eq!(
                failure,
                Err(AuthFailure::Missing(format!("header {name}"))),
                "{scheme}: without {name}"
            );
        }
        let mut doubled = headers.to_vec();
        doubled.push((name, headers[index].1));
        assert_eq!(
            auth.verify(&parts("", &doubled, body), now),
            Err(AuthFailure::Duplicated(format!("header {name}"))),
            "{scheme}: {name} twice"
        );
    }
    let debug = format!("{auth:?} {:?}", auth.view());
    assert!(!debug.contains(scheme["secrets"][0].as_str().unwrap()));
    ok
}

/// Stale and future timestamps, by `tolerance` and a second more.
fn check_tolerance(
    auth: &ConnectorAuth,
    headers: &[(&str, &[u8])],
    body: &[u8],
    signed_at: DateTime<Utc>,
) {
    let tolerance = chrono::Duration::seconds(300);
    let second = chrono::Duration::seconds(1);
    for at in [signed_at + tolerance, signed_at - tolerance] {
        assert!(auth.verify(&parts("", headers, body), at).is_ok(), "{at}");
    }
    for at in [
        signed_at + tolerance + second,
        signed_at - tolerance - second,
    ] {
        assert_eq!(
            auth.verify(&parts("", headers, body), at),
            Err(AuthFailure::OutsideTolerance(300)),
            "{at}"
        );
    }
}

#[test]
fn hub_signature_algorithms_encodings_and_prefixes() {
    let body = br#"{"event":"order","id":7}"#;
    for (algorithm, encoding, prefix, expected_prefix) in [
        ("sha1", "hex", None, "sha1="),
        ("sha256", "base64", Some(""), ""),
        ("sha512", "hex", Some("v1:"), "v1:"),
        ("sha512", "base64", None, "sha512="),
    ] {
        let digest = python_hmac(algorithm, b"s3cret", body, encoding);
        let value = format!("{expected_prefix}{digest}");
        let headers = [
            ("X-Signature", value.as_bytes()),
            ("X-Delivery", &b"d-1"[..]),
        ];
        let mut scheme = serde_json::json!({
            "type": "hubSignature", "header": "X-Signature", "algorithm": algorithm,
            "encoding": encoding, "deliveryIdHeader": "X-Delivery", "secrets": ["s3cret"],
        });
        if let Some(prefix) = prefix {
            scheme["prefix"] = prefix.into();
        }
        let ok = check_scheme(scheme, &headers, body, now());
        assert_eq!(ok.delivery_id.as_deref(), Some("d-1"));
    }
    let auth = auth_of(serde_json::json!({"type": "hubSignature", "secrets": ["s3cret"]}));
    let truncated = format!(
        "sha256={}",
        &python_hmac("sha256", b"s3cret", body, "hex")[..62]
    );
    assert!(matches!(
        auth.verify(
            &parts("", &[("X-Hub-Signature-256", truncated.as_bytes())], body),
            now()
        ),
        Err(AuthFailure::Malformed(_))
    ));
    for bad in [
        serde_json::json!({"type": "hubSignature", "algorithm": "md5"}),
        serde_json::json!({"type": "hubSignature", "encoding": "base32"}),
        serde_json::json!({"type": "hubSignature", "prefix": "has space"}),
        serde_json::json!({"type": "hubSignature", "deliveryIdHeader": "Not A Header"}),
    ] {
        let spec: AuthSpec = serde_json::from_value(bad.clone()).unwrap();
        assert!(ConnectorAuth::from_spec(spec, None, None).is_err(), "{bad}");
    }
}

#[test]
fn github_scheme_with_its_published_vector_and_delivery() {
    let signature = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let headers = [
        ("X-Hub-Signature-256", &signature[..]),
        (
            "X-GitHub-Delivery",
            &b"72d3162e-cc78-11e3-81ab-4c9367dc0958"[..],
        ),
    ];
    let ok = check_scheme(
        serde_json::json!({"type": "github", "secrets": ["It's a Secret to Everybody"]}),
        &headers,
        b"Hello, World!",
        now(),
    );
    assert_eq!(
        ok.delivery_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
}

#[test]
fn shopify_woocommerce_typeform_segment_against_python() {
    let body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    let secret = "hush";
    let base64 = python_hmac("sha256", secret.as_bytes(), body, "base64");
    let typeform = format!("sha256={base64}");
    let segment = python_hmac("sha1", secret.as_bytes(), body, "hex");
    /// A scheme, its signed headers, the delivery id it names and the body field it reads.
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a [u8])>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: [Case; 4] = [
        (
            "shopify",
            vec![
                ("X-Shopify-Hmac-Sha256", base64.as_bytes()),
                (
                    "X-Shopify-Webhook-Id",
                    b"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                ),
            ],
            Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
            None,
        ),
        (
            "woocommerce",
            vec![
                ("X-WC-Webhook-Signature", base64.as_bytes()),
                ("X-WC-Webhook-Delivery-ID", b"4812"),
            ],
            Some("4812"),
            None,
        ),
        (
            "typeform",
            vec![("Typeform-Signature", typeform.as_bytes())],
            None,
            Some("event_id"),
        ),
        (
            "segment",
            vec![("X-Signature", segment.as_bytes())],
            None,
            Some("messageId"),
        ),
    ];
    for (scheme, headers, delivery_id, field) in cases {
        let ok = check_scheme(
            serde_json::json!({"type": scheme, "secrets": [secret]}),
            &headers,
            body,
            now(),
        );
        assert_eq!(ok.delivery_id.as_deref(), delivery_id, "{scheme}");
        assert_eq!(ok.delivery_id_field, field, "{scheme}");
    }
}

#[test]
fn stripe_v1_entries_only_within_tolerance() {
    let body = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event"}"#;
    let secret = "whsec_test_secret";
    let t = now().timestamp();
    let signed = [t.to_string().as_bytes(), b".", &body[..]].concat();
    let v1 = python_hmac("sha256", secret.as_bytes(), &signed, "hex");
    let wrong = python_hmac("sha256", b"another", &signed, "hex");
    // Several v1 entries (Stripe sends one per secret while a secret rolls), and a v0 entry
    // that must not count even though it holds the right digest.
    let header = format!("t={t},v1={wrong},v1={v1},v0={wrong}");
    let headers = [("Stripe-Signature", header.as_bytes())];
    let ok = check_scheme(
        serde_json::json!({"type": "stripe", "secrets": [secret]}),
        &headers,
        body,
        now(),
    );
    assert_eq!(ok.delivery_id_field, Some("id"));
    let auth = auth_of(serde_json::json!({"type": "stripe", "secrets": [secret]}));
    check_tolerance(&auth, &headers, body, now());
    let only_v0 = format!("t={t},v0={v1}");
    assert!(matches!(
        auth.verify(
            &parts("", &[("Stripe-Signature", only_v0.as_bytes())], body),
            now()
        ),
        Err(AuthFailure::Malformed(_))
    ));
    let two_t = format!("t={t},t={t},v1={v1}");
    assert!(matches!(
        auth.verify(
            &parts("", &[("Stripe-Signature", two_t.as_bytes())], body),
            now()
        ),
        Err(AuthFailure::Malformed(_))
    ));
    // The header as Stripe's documentation shows it: parsed, and wrong for our secret.
    let documented = b"t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
    let at = Utc.timestamp_opt(1_492_774_577, 0).unwrap();
    assert_eq!(
        auth.verify(
            &parts("", &[("Stripe-Signature", &documented[..])], body),
            at
        ),
        Err(AuthFailure::WrongCredentials)
    );
}

#[test]
fn slack_published_example() {
    // docs.slack.dev, "Verifying requests from Slack": the worked example.
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let headers = [
        (
            "X-Slack-Signature",
            &b"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"[..],
        ),
        ("X-Slack-Request-Timestamp", &b"1531420618"[..]),
    ];
    let at = Utc.timestamp_opt(1_531_420_618, 0).unwrap();
    let ok = check_scheme(
        serde_json::json!({"type": "slack", "secrets": ["8f742231b10e8888abcd99yyyzzz85a5"]}),
        &headers,
        body,
        at,
    );
    assert_eq!(ok, Authenticated::default());
    let auth = auth_of(
        serde_json::json!({"type": "slack", "secrets": ["8f742231b10e8888abcd99yyyzzz85a5"]}),
    );
    check_tolerance(&auth, &headers, body, at);
}

#[test]
fn zendesk_against_python_with_invocation_id() {
    let body = br#"{"ticket":{"id":35436},"requester":{"email":"ann@example.com"}}"#;
    let timestamp = "2021-02-25T15:02:10Z";
    let signed = [timestamp.as_bytes(), &body[..]].concat();
    let signature = python_hmac("sha256", b"dGhpc19zZWNyZXQ", &signed, "base64");
    let headers = [
        ("X-Zendesk-Webhook-Signature", signature.as_bytes()),
        (
            "X-Zendesk-Webhook-Signature-Timestamp",
            timestamp.as_bytes(),
        ),
        ("X-Zendesk-Webhook-Invocation-Id", &b"8350205582"[..]),
    ];
    let at = Utc.timestamp_opt(1_614_265_330, 0).unwrap();
    let ok = check_scheme(
        serde_json::json!({"type": "zendesk", "secrets": ["dGhpc19zZWNyZXQ"]}),
        &headers,
        body,
        at,
    );
    assert_eq!(ok.delivery_id.as_deref(), Some("8350205582"));
    let auth = auth_of(serde_json::json!({"type": "zendesk", "secrets": ["dGhpc19zZWNyZXQ"]}));
    check_tolerance(&auth, &headers, body, at);
}

#[test]
fn hubspot_v3_sdk_vector_and_the_url_it_signs() {
    // HubSpot's Python SDK, tests/spec/utils/test_signature.py: the v3 vector.
    let secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    let body = b"{'example_field':'example_value'}";
    let headers = [
        (
            "X-HubSpot-Signature-v3",
            &b"HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="[..],
        ),
        ("X-HubSpot-Request-Timestamp", &b"15000000"[..]),
    ];
    let at = Utc.timestamp_opt(15_000, 0).unwrap();
    let spec: AuthSpec =
        serde_json::from_value(serde_json::json!({"type": "hubspot", "secrets": [secret]}))
            .unwrap();
    let (auth, _) = ConnectorAuth::from_spec(spec, None, Some("https://www.example.com")).unwrap();
    let request = RequestParts::post("/webhook_uri", "", &headers, body);
    assert_eq!(auth.verify(&request, at), Ok(Authenticated::default()));
    assert_eq!(auth.public_base_url(), Some("https://www.example.com"));
    // The server-wide base URL stands in for a connector without one.
    let bare = auth_of(serde_json::json!({"type": "hubspot", "secrets": [secret]}));
    assert!(matches!(
        bare.verify(&request, at),
        Err(AuthFailure::NotConfigured(_))
    ));
    let served = RequestParts {
        public_base_url: Some("https://www.example.com"),
        ..request
    };
    assert!(bare.verify(&served, at).is_ok());
    for other in [
        RequestParts {
            method: "PUT",
            ..served
        },
        RequestParts {
            path: "/webhook_url",
            ..served
        },
        RequestParts {
            query: "a=1",
            ..served
        },
        RequestParts {
            public_base_url: Some("http://www.example.com"),
            ..served
        },
    ] {
        assert_eq!(
            bare.verify(&other, at),
            Err(AuthFailure::WrongCredentials),
            "{other:?}"
        );
    }
    // A query string is signed as sent, or with its escapes decoded, as HubSpot documents.
    let query = "portal=62515&name=a%20b";
    let timestamp = (now().timestamp() * 1000).to_string();
    for uri in [
        format!("https://loyalty.example/v1/incoming/con_test?{query}"),
        "https://loyalty.example/v1/incoming/con_test?portal=62515&name=a b".to_string(),
    ] {
        let signed = [b"POST", uri.as_bytes(), &body[..], timestamp.as_bytes()].concat();
        let signature = python_hmac("sha256", secret.as_bytes(), &signed, "base64");
        let headers = [
            ("X-HubSpot-Signature-v3", signature.as_bytes()),
            ("X-HubSpot-Request-Timestamp", timestamp.as_bytes()),
        ];
        let request = RequestParts {
            public_base_url: Some("https://loyalty.example/"),
            ..parts(query, &headers, body)
        };
        assert!(bare.verify(&request, now()).is_ok(), "{uri}");
        let mut stale = now() + chrono::Duration::seconds(301);
        assert_eq!(
            bare.verify(&request, stale),
            Err(AuthFailure::OutsideTolerance(300))
        );
        stale = now() - chrono::Duration::seconds(301);
        assert_eq!(
            bare.verify(&request, stale),
            Err(AuthFailure::OutsideTolerance(300))
        );
    }
}

#[test]
fn standard_webhooks_under_svix_names() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"test": 2432232314}"#;
    let headers = [
        ("svix-id", &b"msg_p5jXN8AQM9LWM0D4loKWxJek"[..]),
        ("svix-timestamp", &b"1614265330"[..]),
        (
            "svix-signature",
            &b"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="[..],
        ),
    ];
    let auth = ConnectorAuth::StandardWebhooks {
        secrets: vec![Secret::new(secret)],
        tolerance_seconds: 300,
    };
    let ok = auth.verify(&parts("", &headers, body), now()).unwrap();
    assert_eq!(
        ok.delivery_id.as_deref(),
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
    );
    check_tolerance(&auth, &headers, body, now());
    // Never a mix of the two families.
    let mixed = [headers[0], headers[1], ("webhook-signature", headers[2].1)];
    assert_eq!(
        auth.verify(&parts("", &mixed, body), now()),
        Err(AuthFailure::Missing("header webhook-id".into()))
    );
    let control = [("svix-id", &b"msg_p5j\0N8"[..]), headers[1], headers[2]];
    assert!(matches!(
        auth.verify(&parts("", &control, body), now()),
        Err(AuthFailure::Malformed(_))
    ));
    let doubled = [headers[0], headers[1], headers[2], headers[0]];
    assert_eq!(
        auth.verify(&parts("", &doubled, body), now()),
        Err(AuthFailure::Duplicated("header svix-id".into()))
    );
}

#[test]
fn sender_schemes_are_written_shown_and_kept_by_name() {
    for scheme in [
        "github",
        "shopify",
        "typeform",
        "woocommerce",
        "segment",
        "stripe",
        "slack",
        "hubspot",
        "zendesk",
    ] {
        let spec: AuthSpec = serde_json::from_value(serde_json::json!({"type": scheme})).unwrap();
        let (auth, generated) = ConnectorAuth::from_spec(spec.clone(), None, None).unwrap();
        let secret = &generated.secrets.as_ref().unwrap()[0];
        assert_eq!(secret.len(), 64);
        assert_eq!(auth.scheme(), scheme);
        let view = serde_json::to_value(auth.view()).unwrap();
        assert_eq!(view["type"], scheme);
        assert_eq!(view["secretCount"], 1);
        assert!(!view.to_string().contains(secret.as_str()));
        let stored = serde_json::to_string(&auth).unwrap();
        let read: ConnectorAuth = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.scheme(), scheme);
        let (kept, again) = ConnectorAuth::from_spec(spec, Some(&read), None).unwrap();
        assert!(again.is_empty(), "{scheme}: secrets kept on replace");
        assert_eq!(serde_json::to_string(&kept).unwrap(), stored);
        assert!(AuthSpec::of_scheme(scheme).is_some());
    }
    let unknown = serde_json::from_value::<AuthSpec>(serde_json::json!({"type": "paypal"}));
    assert!(unknown.is_err());
    let extra = serde_json::json!({"type": "github", "secrets": ["a"], "header": "X"});
    assert!(serde_json::from_value::<AuthSpec>(extra).is_err());
    // A hub signature stored before the new fields existed verifies as it did.
    let old: ConnectorAuth = serde_json::from_str(
        r#"{"type":"hubSignature","header":"X-Hub-Signature-256","secrets":["It's a Secret to Everybody"]}"#,
    )
    .unwrap();
    let signature = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(old
        .verify(
            &parts(
                "",
                &[("X-Hub-Signature-256", &signature[..])],
                b"Hello, World!"
            ),
            now()
        )
        .is_ok());
}

#[test]
fn shape_errors_name_the_fault() {
    for (json, message) in [
        (
            serde_json::json!({"type": "paypal"}),
            "unknown variant `paypal`",
        ),
        (
            serde_json::json!({"type": "queryToken", "bogus": 1}),
            "unknown field `bogus`",
        ),
        (
            serde_json::json!({"type": "github", "bogus": 1}),
            "unknown field `bogus`, expected `secrets`",
        ),
        (
            serde_json::json!({"type": "stripe", "toleranceSeconds": "x"}),
            "invalid type: string \"x\", expected u64",
        ),
    ] {
        let error = serde_json::from_value::<AuthSpec>(json.clone()).unwrap_err();
        assert!(error.to_string().contains(message), "{json}: {error}");
    }
}
