//! Programs, connectors and rules in memory.

use async_trait::async_trait;
use loyalty_core::connector::Connector;
use loyalty_core::ids::{ConnectorId, ProgramId, RuleId};
use loyalty_core::program::Program;
use loyalty_core::rules::Rule;
use loyalty_core::store::{CatalogStore, StoreResult};

use crate::MemoryStore;

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn insert_program(&self, program: &Program) -> StoreResult<()> {
        self.lock()
            .programs
            .insert(program.id.clone(), program.clone());
        Ok(())
    }

    async fn get_program(&self, id: &ProgramId) -> StoreResult<Option<Program>> {
        Ok(self.lock().programs.get(id).cloned())
    }

    async fn list_programs(&self) -> StoreResult<Vec<Program>> {
        let mut programs: Vec<Program> = self.lock().programs.values().cloned().collect();
        programs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(programs)
    }

    async fn put_connector(&self, connector: &Connector) -> StoreResult<()> {
        self.lock()
            .connectors
            .insert(connector.id.clone(), connector.clone());
        Ok(())
    }

    async fn get_connector(&self, id: &ConnectorId) -> StoreResult<Option<Connector>> {
        Ok(self.lock().connectors.get(id).cloned())
    }

    async fn list_connectors(&self, program: &ProgramId) -> StoreResult<Vec<Connector>> {
        let mut connectors: Vec<Connector> = self
            .lock()
            .connectors
            .values()
            .filter(|c| c.program_id == *program && !c.deleted)
            .cloned()
            .collect();
        connectors.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(connectors)
    }

    async fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        self.lock().rules.insert(rule.id.clone(), rule.clone());
        Ok(())
    }

    async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<Option<Rule>> {
        Ok(self
            .lock()
            .rules
            .get(id)
            .filter(|r| r.program_id == *program)
            .cloned())
    }

    async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> StoreResult<Vec<Rule>> {
        let mut rules: Vec<Rule> = self
            .lock()
            .rules
            .values()
            .filter(|r| r.program_id == *program && connector.is_none_or(|c| *c == r.connector_id))
            .cloned()
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rules)
    }

    async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<bool> {
        let mut state = self.lock();
        if state
            .rules
            .get(id)
            .is_some_and(|r| r.program_id == *program)
        {
            state.rules.remove(id);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}
