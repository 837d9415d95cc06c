//! Programs, connectors and rules: what admins set up.

use super::StoreResult;
use crate::connector::Connector;
use crate::ids::{ConnectorId, ProgramId, RuleId};
use crate::program::Program;
use crate::rules::Rule;
use async_trait::async_trait;

/// What admins set up: programs, their connectors and their rules.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn insert_program(&self, program: &Program) -> StoreResult<()>;
    async fn get_program(&self, id: &ProgramId) -> StoreResult<Option<Program>>;
    async fn list_programs(&self) -> StoreResult<Vec<Program>>;

    /// Inserts or replaces (by id).
    async fn put_connector(&self, connector: &Connector) -> StoreResult<()>;
    /// Any connector by id, deleted ones included (the caller checks the program).
    async fn get_connector(&self, id: &ConnectorId) -> StoreResult<Option<Connector>>;
    /// The program's connectors that are not deleted, oldest first.
    async fn list_connectors(&self, program: &ProgramId) -> StoreResult<Vec<Connector>>;

    /// Inserts or replaces (by id).
    async fn put_rule(&self, rule: &Rule) -> StoreResult<()>;
    async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<Option<Rule>>;
    /// The program's rules, of one connector if given, oldest first.
    async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> StoreResult<Vec<Rule>>;
    async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<bool>;
}
