//! Which parts of an input document a JSONata expression can read.
//!
//! Parsing a body into the mapping engine's value type was the largest single cost of the
//! pipeline: every key and value of a 1.4 KB payload became a heap string in a hashed map,
//! although a typical mapping reads five fields. A [`Projection`] is computed once per
//! mapping from its AST; the body is then checked in full (it must be valid JSON, UTF-8,
//! nested at most 127 levels, with no lone surrogate) but only the fields the expression can
//! reach are built.
//!
//! The analysis is conservative: anything it does not fully understand reads the whole
//! document. It keeps, for every path that starts at the document's root, the run of plain
//! field names it begins with (`profile.email` keeps `profile.email`, nothing else of
//! `profile`), and the whole value at the end of the run. It gives up (reads everything) on
//! `$` or `$$` at the root, the parent operator `%`, focus and index bindings, a wildcard or
//! descendant at the root, `$eval`, and any built-in that could receive the root as an
//! implicit argument (`$string()`, `$keys()`, `$lookup(x)`...), including such a built-in
//! passed around as a value. Lambda bodies are read as if evaluated at the root, so a lambda
//! keeps what it names whichever context it is called in.
//!
//! Why this is sound: a JSONata expression reaches input data only through its context
//! value. At the root, that is the document; elsewhere (a predicate, a later path step, an
//! object transform's pattern) it is a value reached from the root by a path whose end is kept
//! whole, or a value the expression built itself. Fields outside the projection are therefore
//! never observed, and the mapping's output is the same as on the whole document (a property
//! test in `tests` checks this against full parses).

use jsonata_core::ast::{AstNode, BinaryOp, PathStep, Stage};
use std::collections::BTreeMap;

/// The parts of a document a mapping can read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Projection {
    /// The whole value.
    #[default]
    Whole,
    /// Of an object, only these fields, each with its own projection; of an array, each item
    /// projected the same way (a JSONata path maps over arrays); other values whole.
    Fields(BTreeMap<String, Projection>),
}

impl Projection {
    /// What `ast` can read of its input.
    pub fn of(ast: &AstNode) -> Projection {
        let mut reads = Projection::Fields(BTreeMap::new());
        match visit(ast, true, &mut reads) {
            Ok(()) => reads,
            Err(ReadsWholeInput) => Projection::Whole,
        }
    }

    /// The projection of field `name`, `None` when the field is not read.
    pub fn field(&self, name: &str) -> Option<&Projection> {
        match self {
            Projection::Whole => Some(&Projection::Whole),
            Projection::Fields(fields) => fields.get(name),
        }
    }

    pub fn is_whole(&self) -> bool {
        matches!(self, Projection::Whole)
    }

    /// Marks the value at `path` (a run of field names from here) as read whole.
    fn keep(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else {
            *self = Projection::Whole;
            return;
        };
        if let Projection::Fields(fields) = self {
            let child = fields
                .entry((*first).to_owned())
                .or_insert_with(|| Projection::Fields(BTreeMap::new()));
            child.keep(rest);
        }
    }
}

/// The analysis gave up: the expression may read anything.
struct ReadsWholeInput;

/// Built-ins whose signature takes the context as an implicit first argument (a `-` in the
/// signature, or jsonata-core's own insertion), with the number of arguments that leaves no
/// room for it. Called at the root with fewer, they would receive the whole document.
const CONTEXT_BUILTINS: &[(&str, usize)] = &[
    ("abs", 1),
    ("base64decode", 1),
    ("base64encode", 1),
    ("boolean", 1),
    ("ceil", 1),
    ("contains", 2),
    ("decodeUrl", 1),
    ("decodeUrlComponent", 1),
    ("each", 2),
    ("encodeUrl", 1),
    ("encodeUrlComponent", 1),
    ("floor", 1),
    ("formatBase", 2),
    ("formatInteger", 2),
    ("formatNumber", 3),
    ("fromMillis", 3),
    ("keys", 1),
    ("length", 1),
    ("lookup", 2),
    ("lowercase", 1),
    ("match", 3),
    ("not", 1),
    ("number", 1),
    ("pad", 3),
    ("parseInteger", 2),
    ("power", 2),
    ("replace", 4),
    ("round", 2),
    ("sift", 2),
    ("split", 3),
    ("spread", 1),
    ("sqrt", 1),
    ("string", 1),
    ("substring", 3),
    ("substringAfter", 2),
    ("substringBefore", 2),
    ("toMillis", 2),
    ("trim", 1),
    ("uppercase", 1),
];

/// Built-ins that read nothing of the context when called without arguments.
const NO_INPUT_BUILTINS: &[&str] = &["now", "millis", "random"];

fn context_builtin(name: &str) -> Option<usize> {
    CONTEXT_BUILTINS
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, arity)| *arity)
}

/// Records what `node` reads into `reads`. `at_root`: the node's context value is the
/// document itself (otherwise it is a value kept whole, or one the expression built).
fn visit(node: &AstNode, at_root: bool, reads: &mut Projection) -> Result<(), ReadsWholeInput> {
    match node {
        AstNode::String(_)
        | AstNode::Number(_)
        | AstNode::Boolean(_)
        | AstNode::Null
        | AstNode::Undefined
        | AstNode::Placeholder
        | AstNode::Regex { .. } => Ok(()),
        AstNode::Name(name) => {
            if at_root {
                reads.keep(&[name]);
            }
            Ok(())
        }
        AstNode::Variable(name) => {
            // `$` is the context; a context-taking built-in or `$eval` as a value could be
            // called anywhere, with anything.
            if (name.is_empty() && at_root) || name == "eval" || context_builtin(name).is_some() {
                return Err(ReadsWholeInput);
            }
            Ok(())
        }
        AstNode::ParentVariable(_) | AstNode::Parent(_) => Err(ReadsWholeInput),
        AstNode::Wildcard | AstNode::Descendant => {
            if at_root {
                Err(ReadsWholeInput)
            } else {
                Ok(())
            }
        }
        AstNode::Path { steps } => visit_path(steps, at_root, reads),
        AstNode::Binary { op, lhs, rhs } => match op {
            BinaryOp::FocusBind | BinaryOp::IndexBind => Err(ReadsWholeInput),
            // `x ~> $f(y)` calls `$f(x, y)`: the call has one argument more than it shows.
            BinaryOp::ChainPipe => {
                visit(lhs, at_root, reads)?;
                match rhs.as_ref() {
                    AstNode::Function { name, args, .. } => {
                        visit_call(name, args, 1, at_root, reads)
                    }
                    other => visit(other, at_root, reads),
                }
            }
            _ => {
                visit(lhs, at_root, reads)?;
                visit(rhs, at_root, reads)
            }
        },
        AstNode::Unary { operand, .. } => visit(operand, at_root, reads),
        AstNode::Function { name, args, .. } => visit_call(name, args, 0, at_root, reads),
        AstNode::Call { procedure, args } => {
            visit(procedure, at_root, reads)?;
            args.iter().try_for_each(|arg| visit(arg, at_root, reads))
        }
        AstNode::Lambda {
            body, signature, ..
        } => {
            if signature.as_deref().is_some_and(|s| s.contains('-')) {
                return Err(ReadsWholeInput);
            }
            visit(body, true, reads)
        }
        AstNode::Array(items) | AstNode::Block(items) | AstNode::ArrayGroup(items) => items
            .iter()
            .try_for_each(|item| visit(item, at_root, reads)),
        AstNode::Object(pairs) => pairs.iter().try_for_each(|(key, value)| {
            visit(key, at_root, reads)?;
            visit(value, at_root, reads)
        }),
        AstNode::ObjectTransform { input, pattern } => {
            visit(input, at_root, reads)?;
            pattern.iter().try_for_each(|(key, value)| {
                visit(key, false, reads)?;
                visit(value, false, reads)
            })
        }
        AstNode::Conditional {
            condition,
            then_branch,
            else_branch,
        } => {
            visit(condition, at_root, reads)?;
            visit(then_branch, at_root, reads)?;
            match else_branch {
                Some(branch) => visit(branch, at_root, reads),
                None => Ok(()),
            }
        }
        AstNode::FunctionApplication(expression) => visit(expression, at_root, reads),
        AstNode::Sort { input, terms } => {
            visit(input, at_root, reads)?;
            terms
                .iter()
                .try_for_each(|(term, _)| visit(term, false, reads))
        }
        // A transform is a function of the value it is given, which is analysed where it is
        // given.
        AstNode::Transform {
            location,
            update,
            delete,
        } => {
            visit(location, false, reads)?;
            visit(update, false, reads)?;
            match delete {
                Some(delete) => visit(delete, false, reads),
                None => Ok(()),
            }
        }
    }
}

fn visit_call(
    name: &str,
    args: &[AstNode],
    piped: usize,
    at_root: bool,
    reads: &mut Projection,
) -> Result<(), ReadsWholeInput> {
    if name == "eval" {
        return Err(ReadsWholeInput);
    }
    let given = args.len() + piped;
    if at_root {
        let takes_context = match context_builtin(name) {
            Some(arity) => given < arity,
            // Any other call without arguments: a user lambda with a context signature, or
            // a built-in bound to another name, could receive the root.
            None => given == 0 && !NO_INPUT_BUILTINS.contains(&name),
        };
        if takes_context {
            return Err(ReadsWholeInput);
        }
    }
    args.iter().try_for_each(|arg| visit(arg, at_root, reads))
}

fn visit_path(
    steps: &[PathStep],
    at_root: bool,
    reads: &mut Projection,
) -> Result<(), ReadsWholeInput> {
    if steps.iter().any(binds_or_looks_up) {
        return Err(ReadsWholeInput);
    }
    let mut rest = steps;
    if at_root {
        // The run of plain field names the path starts with; its last value is kept whole
        // (the steps after it, and its own predicates, read inside it).
        let mut run: Vec<&str> = Vec::new();
        for step in steps {
            let AstNode::Name(name) = &step.node else {
                break;
            };
            run.push(name);
            if !step.stages.is_empty() {
                break;
            }
        }
        if run.is_empty() {
            if let Some((first, after)) = steps.split_first() {
                visit(&first.node, true, reads)?;
                visit_stages(&first.stages, reads)?;
                rest = after;
            }
        } else {
            reads.keep(&run);
            let (named, after) = steps.split_at(run.len());
            if let Some(last) = named.last() {
                visit_stages(&last.stages, reads)?;
            }
            rest = after;
        }
    }
    for step in rest {
        visit(&step.node, false, reads)?;
        visit_stages(&step.stages, reads)?;
    }
    Ok(())
}

fn visit_stages(stages: &[Stage], reads: &mut Projection) -> Result<(), ReadsWholeInput> {
    stages.iter().try_for_each(|stage| match stage {
        Stage::Filter(predicate) => visit(predicate, false, reads),
        Stage::KeepArray => Ok(()),
        Stage::Index(_) => Err(ReadsWholeInput),
    })
}

/// Steps that bind variables to positions or keep ancestors: they reach outside their value.
fn binds_or_looks_up(step: &PathStep) -> bool {
    step.focus.is_some()
        || step.index_var.is_some()
        || step.ancestor_label.is_some()
        || step.is_tuple
        || step.inner_tuple
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> Projection {
        Projection::of(&jsonata_core::parser::parse(source).unwrap())
    }

    fn fields(pairs: &[(&str, Projection)]) -> Projection {
        Projection::Fields(
            pairs
                .iter()
                .map(|(name, p)| ((*name).to_owned(), p.clone()))
                .collect(),
        )
    }

    #[test]
    fn the_seed_mapping_reads_five_fields() {
        let projection = reads(crate::testing::SEED_MAPPING);
        assert_eq!(
            projection,
            fields(&[
                ("article", fields(&[("theme", Projection::Whole)])),
                ("eventId", Projection::Whole),
                ("profile", fields(&[("email", Projection::Whole)])),
                ("timestamp", Projection::Whole),
                ("totalArticlesRead", Projection::Whole),
            ])
        );
    }

    #[test]
    fn predicates_and_later_steps_keep_the_value_whole() {
        assert_eq!(
            reads("items[price > 5].name"),
            fields(&[("items", Projection::Whole)])
        );
        assert_eq!(
            reads("order.(total * 2)"),
            fields(&[("order", Projection::Whole)])
        );
        assert_eq!(
            reads("$count(lines) & $string(a.b) & (x ~> $uppercase())"),
            fields(&[
                ("a", fields(&[("b", Projection::Whole)])),
                ("lines", Projection::Whole),
                ("x", Projection::Whole),
            ])
        );
        assert_eq!(reads("{'t': $now()}"), fields(&[]));
    }

    #[test]
    fn anything_that_can_see_the_root_reads_everything() {
        for source in [
            "$",
            "$.a",
            "$$.a",
            "*",
            "**.a",
            "a.%.b",
            "$keys()",
            "$string()",
            "$lookup('a')",
            "$eval('a')",
            "($f := $keys; $f($))",
            "($f := $string; $f())",
            "$spread($)",
            "a@$x.b",
            "a#$i.b",
            "(function(){ $ })()",
            "$sift(function($v){ $v })",
        ] {
            assert_eq!(reads(source), Projection::Whole, "{source}");
        }
    }

    #[test]
    fn lambdas_keep_what_they_name() {
        assert_eq!(
            reads("($f := function($x){ $x & suffix }; $f(name))"),
            fields(&[("name", Projection::Whole), ("suffix", Projection::Whole)])
        );
    }
}
