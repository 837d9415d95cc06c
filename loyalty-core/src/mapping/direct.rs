//! A direct evaluator for the mappings most connectors have: object and array constructors
//! with literal keys, literals, and plain field paths (`{"clientEventId": eventId, "profile":
//! {"value": profile.email}}`).
//!
//! jsonata-core spends about 20,000 instructions evaluating such a mapping (a fresh
//! evaluator, scopes, sequences, singleton unwrapping), most of the mapping's time. For this
//! subset the result is plainly defined and computed here in about a tenth of that, most of it
//! the output's own allocations. The subset is
//! chosen so that it never meets JSONata's subtle parts: a path that reaches an array (where
//! sequences, flattening and singleton rules begin) gives up at run time, and the item is
//! evaluated by jsonata-core as before. A property test (`tests/mapping_properties.rs`) and the
//! `mapping_eval` fuzz target check that both give the same results.

use jsonata_core::ast::{AstNode, PathStep, UnaryOp};
use jsonata_core::value::JValue;

/// This item needs jsonata-core (a path met an array, or the item is not an object).
#[derive(Debug)]
pub(crate) struct NeedsJsonata;

/// A mapping in the direct subset. It is shared by threads, so it holds `String`s, not the
/// `Rc<str>` of jsonata-core's values.
#[derive(Clone, Debug)]
pub(crate) enum Template {
    String(String),
    Number(f64),
    Bool(bool),
    Null,
    Path(Vec<String>),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

impl Template {
    /// The template of `ast`, `None` when it is outside the subset.
    pub(crate) fn compile(ast: &AstNode) -> Option<Template> {
        Some(match ast {
            AstNode::String(s) => Template::String(s.clone()),
            AstNode::Number(n) => Template::Number(*n),
            AstNode::Unary {
                op: UnaryOp::Negate,
                operand,
            } => match operand.as_ref() {
                AstNode::Number(n) => Template::Number(-n),
                _ => return None,
            },
            AstNode::Boolean(b) => Template::Bool(*b),
            AstNode::Null => Template::Null,
            AstNode::Name(name) => Template::Path(vec![name.clone()]),
            AstNode::Path { steps } => Template::Path(
                steps
                    .iter()
                    .map(plain_name)
                    .collect::<Option<Vec<String>>>()?,
            ),
            AstNode::Object(pairs) => {
                let mut fields: Vec<(String, Template)> = Vec::with_capacity(pairs.len());
                for (key, value) in pairs {
                    let AstNode::String(key) = key else {
                        return None;
                    };
                    // A repeated literal key is JSONata's error D1009: jsonata-core says so.
                    if fields.iter().any(|(seen, _)| seen == key) {
                        return None;
                    }
                    fields.push((key.clone(), Template::compile(value)?));
                }
                Template::Object(fields)
            }
            AstNode::Array(items) => Template::Array(
                items
                    .iter()
                    .map(Template::compile)
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        })
    }

    /// The result on `root` as JSON (`null` for JSONata's undefined, as [`super::Mapping`]
    /// answers), built within `limit` bytes of text counted from above (see
    /// [`super::bounded_json`]): past that, jsonata-core's path counts exactly.
    pub(crate) fn evaluate(
        &self,
        root: &JValue,
        limit: usize,
    ) -> Result<serde_json::Value, NeedsJsonata> {
        // An object constructor over an array groups its items; a path over one maps: both
        // are jsonata-core's.
        if !matches!(root, JValue::Object(_)) {
            return Err(NeedsJsonata);
        }
        let mut budget = super::TextBudget::new(limit);
        let result = self.evaluate_in(root, &mut budget)?;
        Ok(result.unwrap_or(serde_json::Value::Null))
    }

    fn evaluate_in(
        &self,
        root: &JValue,
        budget: &mut super::TextBudget,
    ) -> Result<Option<serde_json::Value>, NeedsJsonata> {
        use serde_json::Value;
        Ok(Some(match self {
            Template::String(s) => {
                budget.string(s).ok_or(NeedsJsonata)?;
                Value::String(s.clone())
            }
            Template::Number(n) => {
                budget.number().ok_or(NeedsJsonata)?;
                super::json_number(*n)
            }
            Template::Bool(b) => {
                budget.bool().ok_or(NeedsJsonata)?;
                Value::Bool(*b)
            }
            Template::Null => {
                budget.null().ok_or(NeedsJsonata)?;
                Value::Null
            }
            Template::Path(names) => {
                let mut value = root;
                for name in names {
                    value = match value {
                        JValue::Object(fields) => match fields.get(name.as_str()) {
                            Some(field) => field,
                            None => return Ok(None),
                        },
                        JValue::Array(_) => return Err(NeedsJsonata),
                        // A field of a string, number, boolean or null is undefined.
                        _ => return Ok(None),
                    };
                }
                match value {
                    JValue::Array(_) => return Err(NeedsJsonata),
                    other => super::convert_within(other, budget, 0).ok_or(NeedsJsonata)?,
                }
            }
            Template::Object(fields) => {
                budget.container(fields.len()).ok_or(NeedsJsonata)?;
                let mut object = serde_json::Map::with_capacity(fields.len());
                for (key, template) in fields {
                    if let Some(value) = template.evaluate_in(root, budget)? {
                        budget.key(key).ok_or(NeedsJsonata)?;
                        object.insert(key.clone(), value);
                    }
                }
                Value::Object(object)
            }
            Template::Array(items) => {
                budget.container(items.len()).ok_or(NeedsJsonata)?;
                let mut array = Vec::with_capacity(items.len());
                for template in items {
                    // Undefined items vanish; no item here is a sequence to flatten (paths
                    // that reach arrays went to jsonata-core, and nested constructors are
                    // kept as they are).
                    if let Some(value) = template.evaluate_in(root, budget)? {
                        array.push(value);
                    }
                }
                Value::Array(array)
            }
        }))
    }
}

/// The field name of a step that is nothing more than a name.
fn plain_name(step: &PathStep) -> Option<String> {
    let plain = step.stages.is_empty()
        && step.focus.is_none()
        && step.index_var.is_none()
        && step.ancestor_label.is_none()
        && !step.is_tuple
        && !step.inner_tuple;
    match &step.node {
        AstNode::Name(name) if plain => Some(name.clone()),
        _ => None,
    }
}
