//! Programs, connectors and rules: validated, stored, and the cache told.

use super::Engine;
use crate::connector::{Connector, ConnectorSpec, ConnectorView};
use crate::error::{Error, Result};
use crate::ids::{ConnectorId, ProgramId, RuleId};
use crate::mapping::JsonataMapping;
use crate::program::{Program, ProgramSpec, DEFAULT_IDENTIFIER_KIND};
use crate::rules::{Rule, RuleSpec};
use crate::secret::TokenHash;
use crate::templates::{self, ConnectorFromTemplate, Template};

impl Engine {
    // ---- programs ---------------------------------------------------------------------------

    /// Creates a program; returns it and its admin token (shown only now).
    pub async fn create_program(&self, spec: ProgramSpec) -> Result<(Program, String)> {
        spec.validate()?;
        let id = ProgramId::generate();
        let token = crate::program::program_token(&id);
        let program = Program {
            id,
            name: spec.name.trim().to_owned(),
            default_identifier_kind: spec
                .default_identifier_kind
                .unwrap_or_else(|| DEFAULT_IDENTIFIER_KIND.into()),
            enroll_unknown_members: spec.enroll_unknown_members.unwrap_or(true),
            points_expiry: spec.points_expiry,
            admin_token_hash: TokenHash::of(&token),
            created_at: self.now(),
        };
        self.store.insert_program(&program).await?;
        Ok((program, token))
    }

    pub async fn list_programs(&self) -> Result<Vec<Program>> {
        Ok(self.store.list_programs().await?)
    }

    pub async fn get_program(&self, id: &ProgramId) -> Result<Program> {
        self.store
            .get_program(id)
            .await?
            .ok_or(Error::NotFound { what: "program" })
    }

    /// Whether `token` is the program's admin token (constant-time). An unknown program is
    /// simply `false`, so that a caller cannot tell which programs exist.
    pub async fn verify_program_token(&self, id: &ProgramId, token: &str) -> Result<bool> {
        Ok(self
            .store
            .get_program(id)
            .await?
            .is_some_and(|p| p.admin_token_hash.matches(token.as_bytes())))
    }

    // ---- connectors -------------------------------------------------------------------------

    pub async fn create_connector(
        &self,
        program: &ProgramId,
        spec: ConnectorSpec,
    ) -> Result<ConnectorView> {
        self.get_program(program).await?;
        let max_event_age_days = spec.check()?;
        JsonataMapping::compile(&spec.mapping).map_err(Error::InvalidMapping)?;
        let (auth, generated) = spec.auth_for(None)?;
        let now = self.now();
        let connector = Connector {
            id: ConnectorId::generate(),
            program_id: program.clone(),
            name: spec.name.trim().to_owned(),
            event_type: spec.event_type,
            auth,
            mapping: spec.mapping,
            test_mode: spec.test_mode,
            max_event_age_days,
            revision: 1,
            created_at: now,
            updated_at: now,
            deleted: false,
        };
        self.store.put_connector(&connector).await?;
        Ok(connector.view(&generated))
    }

    /// The templates connectors can be created from.
    pub fn templates(&self) -> &'static [Template] {
        templates::all()
    }

    /// Creates a connector from a template: its event type, authentication scheme (secrets
    /// generated) and mapping, except where `request` gives a field, which wins whole.
    pub async fn create_connector_from_template(
        &self,
        program: &ProgramId,
        request: ConnectorFromTemplate,
    ) -> Result<ConnectorView> {
        self.create_connector(program, request.into_spec()?).await
    }

    pub async fn get_connector(&self, program: &ProgramId, id: &ConnectorId) -> Result<Connector> {
        match self.get_connector_including_deleted(program, id).await? {
            c if !c.deleted => Ok(c),
            _ => Err(Error::NotFound { what: "connector" }),
        }
    }

    pub(super) async fn get_connector_including_deleted(
        &self,
        program: &ProgramId,
        id: &ConnectorId,
    ) -> Result<Connector> {
        match self.store.get_connector(id).await? {
            Some(c) if c.program_id == *program => Ok(c),
            _ => Err(Error::NotFound { what: "connector" }),
        }
    }

    pub async fn list_connectors(&self, program: &ProgramId) -> Result<Vec<Connector>> {
        self.get_program(program).await?;
        Ok(self.store.list_connectors(program).await?)
    }

    /// Replaces a connector. Left-out tokens and secrets keep their current values.
    pub async fn replace_connector(
        &self,
        program: &ProgramId,
        id: &ConnectorId,
        spec: ConnectorSpec,
    ) -> Result<ConnectorView> {
        let current = self.get_connector(program, id).await?;
        let max_event_age_days = spec.check()?;
        JsonataMapping::compile(&spec.mapping).map_err(Error::InvalidMapping)?;
        let (auth, generated) = spec.auth_for(Some(&current.auth))?;
        if spec.event_type != current.event_type {
            for rule in self.store.list_rules(program, Some(id)).await? {
                rule.definition.check_fits(spec.event_type).map_err(|_| {
                    Error::invalid(
                        "/eventType",
                        format!("rule {} reads purchase fields; change or delete it before changing the event type", rule.id),
                    )
                })?;
            }
        }
        let connector = Connector {
            name: spec.name.trim().to_owned(),
            event_type: spec.event_type,
            auth,
            mapping: spec.mapping,
            test_mode: spec.test_mode,
            max_event_age_days,
            revision: current.revision + 1,
            updated_at: self.now(),
            ..current
        };
        self.store.put_connector(&connector).await?;
        self.forget(id);
        Ok(connector.view(&generated))
    }

    /// Deletes a connector and its rules. Its logged events stay in the log.
    pub async fn delete_connector(&self, program: &ProgramId, id: &ConnectorId) -> Result<()> {
        let current = self.get_connector(program, id).await?;
        for rule in self.store.list_rules(program, Some(id)).await? {
            self.store.delete_rule(program, &rule.id).await?;
        }
        let connector = Connector {
            deleted: true,
            updated_at: self.now(),
            revision: current.revision + 1,
            ..current
        };
        self.store.put_connector(&connector).await?;
        self.forget(id);
        Ok(())
    }

    // ---- rules --------------------------------------------------------------------------------

    pub(super) async fn rule_from_spec(
        &self,
        program: &ProgramId,
        spec: &RuleSpec,
    ) -> Result<crate::rules::RuleDefinition> {
        let definition = spec.compile()?;
        let connector = self
            .get_connector(program, &spec.connector_id)
            .await
            .map_err(|_| {
                Error::invalid("/connectorId", "no connector with this id in this program")
            })?;
        definition.check_fits(connector.event_type)?;
        Ok(definition)
    }

    pub async fn create_rule(&self, program: &ProgramId, spec: RuleSpec) -> Result<Rule> {
        let spec = spec.at_stored_precision();
        let definition = self.rule_from_spec(program, &spec).await?;
        let now = self.now();
        let rule = Rule::written(
            RuleId::generate(),
            program.clone(),
            spec,
            definition,
            now,
            now,
        );
        self.store.put_rule(&rule).await?;
        self.forget(&rule.connector_id);
        Ok(rule)
    }

    pub async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> Result<Rule> {
        self.store
            .get_rule(program, id)
            .await?
            .ok_or(Error::NotFound { what: "rule" })
    }

    pub async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> Result<Vec<Rule>> {
        self.get_program(program).await?;
        Ok(self.store.list_rules(program, connector).await?)
    }

    pub async fn replace_rule(
        &self,
        program: &ProgramId,
        id: &RuleId,
        spec: RuleSpec,
    ) -> Result<Rule> {
        let current = self.get_rule(program, id).await?;
        let spec = spec.at_stored_precision();
        let definition = self.rule_from_spec(program, &spec).await?;
        let rule = Rule::written(
            current.id.clone(),
            current.program_id.clone(),
            spec,
            definition,
            current.created_at,
            self.now(),
        );
        self.store.put_rule(&rule).await?;
        self.forget(&current.connector_id);
        self.forget(&rule.connector_id);
        Ok(rule)
    }

    pub async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> Result<()> {
        let current = self.get_rule(program, id).await?;
        self.store.delete_rule(program, id).await?;
        self.forget(&current.connector_id);
        Ok(())
    }
}
