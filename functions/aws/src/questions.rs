//! DynamoDB implementation of the Q&A store: one item per question in the stream's
//! partition and one per vote (one per user and question, by condition). Key shapes in
//! [`crate::keys`].

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use rill_core::realtime::Question;
use rill_core::store::{Origin, QuestionStore, StoreError};

use crate::keys::{self, Listed};
use crate::realtime::build;
use crate::store::{DynamoStore, from_item, n, s, to_item, unavailable, unless_condition_failed};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuestionItem {
    pk: String,
    sk: String,
    entity: String,
    pub(crate) origin: String,
    #[serde(flatten)]
    pub(crate) question: Question,
}

impl QuestionItem {
    pub(crate) fn new(question: &Question, origin: Origin) -> QuestionItem {
        let key = keys::question(&question.stream_id, &question.id);
        QuestionItem {
            pk: key.pk,
            sk: key.sk,
            entity: "question".into(),
            origin: origin.as_str().into(),
            question: question.clone(),
        }
    }
}

#[async_trait]
impl QuestionStore for DynamoStore {
    async fn put_question(&self, question: &Question, origin: Origin) -> Result<(), StoreError> {
        let item = to_item(&QuestionItem::new(question, origin))?;
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| unavailable("put question", e.into_service_error()))?;
        Ok(())
    }

    async fn list_questions(&self, stream_id: &str) -> Result<Vec<Question>, StoreError> {
        let mut questions = self
            .query_listed(stream_id, Listed::Questions, None, false, "list questions")
            .await?
            .into_iter()
            .map(|item| from_item::<QuestionItem>(item).map(|q| q.question))
            .collect::<Result<Vec<_>, _>>()?;
        questions.sort_by(|a, b| b.upvotes.cmp(&a.upvotes).then_with(|| a.id.cmp(&b.id)));
        Ok(questions)
    }

    async fn upvote(
        &self,
        stream_id: &str,
        question_id: &str,
        user_id: &str,
    ) -> Result<Question, StoreError> {
        if self.get_question(stream_id, question_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let vote = keys::vote(stream_id, question_id, user_id);
        let vote = build(
            Put::builder()
                .table_name(&self.table)
                .item("pk", s(vote.pk))
                .item("sk", s(vote.sk))
                .item("entity", s("vote"))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let count = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::question(stream_id, question_id).item()))
                .update_expression("ADD upvotes :one")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":one", n(1))
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().put(vote).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.transact(items, "upvote").await {
            Ok(()) => {}
            Err(Some(e)) => return Err(e),
            Err(None) => {
                return Err(StoreError::Conflict {
                    current: None,
                    command: None,
                });
            }
        }
        self.get_question(stream_id, question_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn mark_answered(
        &self,
        stream_id: &str,
        question_id: &str,
    ) -> Result<Question, StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::question(stream_id, question_id).item()))
            .update_expression("SET answered = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let out = unless_condition_failed(out, "answer")?.ok_or(StoreError::NotFound)?;
        let item = out.attributes.ok_or(StoreError::NotFound)?;
        Ok(from_item::<QuestionItem>(item)?.question)
    }
}

impl DynamoStore {
    async fn get_question(
        &self,
        stream_id: &str,
        question_id: &str,
    ) -> Result<Option<Question>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::question(stream_id, question_id).item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get question", e.into_service_error()))?;
        Ok(out
            .item
            .map(from_item::<QuestionItem>)
            .transpose()?
            .map(|q| q.question))
    }
}
