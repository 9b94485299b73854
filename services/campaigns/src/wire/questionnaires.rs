//! Questionnaires in and out.

use crm_kit::{Error, FieldViolation, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use crate::{
    domain::questionnaire::{Answer, Kind, Question, Summary},
    resources::QUESTIONNAIRE,
    store::questionnaires::{InvitationRow, QuestionnaireRow},
};

/// The questions of a request (their kinds; the rest is the domain's to check).
pub fn questions_from(questions: &[pb::Question]) -> Result<Vec<Question>, Error> {
    let mut violations = Vec::new();
    let mut out = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let kind = match pb::QuestionKind::try_from(q.kind) {
            Ok(pb::QuestionKind::Rating) => Kind::Rating,
            Ok(pb::QuestionKind::Nps) => Kind::Nps,
            Ok(pb::QuestionKind::Choice) => Kind::Choice,
            Ok(pb::QuestionKind::Text) => Kind::Text,
            _ => {
                violations.push(FieldViolation::new(
                    format!("questionnaire.questions[{i}].kind"),
                    "INVALID_KIND",
                    "RATING, NPS, CHOICE or TEXT",
                ));
                continue;
            }
        };
        out.push(Question { id: q.id.clone(), text: q.text.trim().to_owned(), kind, options: q.options.clone(), required: q.required });
    }
    match violations.is_empty() {
        true => Ok(out),
        false => Err(Error::InvalidArgument { violations }),
    }
}

fn question_to(q: &Question) -> pb::Question {
    let kind = match q.kind {
        Kind::Rating => pb::QuestionKind::Rating,
        Kind::Nps => pb::QuestionKind::Nps,
        Kind::Choice => pb::QuestionKind::Choice,
        Kind::Text => pb::QuestionKind::Text,
    };
    pb::Question { id: q.id.clone(), text: q.text.clone(), kind: kind as i32, options: q.options.clone(), required: q.required }
}

/// A stored questionnaire as a response.
pub fn questionnaire_to(row: &QuestionnaireRow) -> pb::Questionnaire {
    pb::Questionnaire {
        name: QUESTIONNAIRE.name(row.id),
        display_name: row.display_name.clone(),
        questions: row.questions.0.iter().map(question_to).collect(),
        answer_within_days: row.answer_within_days,
        create_time: Some(to_timestamp(row.create_time)),
    }
}

/// An invitation with its questionnaire, as the customer sees it.
pub fn invitation_to(invitation: &InvitationRow, questionnaire: &QuestionnaireRow) -> pb::QuestionnaireInvitation {
    pb::QuestionnaireInvitation {
        questionnaire: QUESTIONNAIRE.name(questionnaire.id),
        display_name: questionnaire.display_name.clone(),
        questions: questionnaire.questions.0.iter().map(question_to).collect(),
        expire_time: Some(to_timestamp(invitation.expire_time)),
        answer_time: invitation.answer_time.map(to_timestamp),
    }
}

/// The answers of a request.
pub fn answers_from(answers: &[pb::Answer]) -> Vec<Answer> {
    answers.iter().map(|a| Answer { question: a.question.clone(), score: a.score, text: a.text.trim().to_owned() }).collect()
}

/// Results as a response.
pub fn results_to(row: &QuestionnaireRow, invited: i64, answered: i64, summaries: &[(String, Summary)]) -> pb::QuestionnaireResults {
    pb::QuestionnaireResults {
        name: format!("{}/results", QUESTIONNAIRE.name(row.id)),
        invited,
        answered,
        questions: summaries
            .iter()
            .map(|(id, s)| pb::QuestionResult {
                question: id.clone(),
                answers: s.answers,
                mean: s.mean,
                nps: s.nps,
                choices: s.choices.clone().into_iter().collect(),
            })
            .collect(),
    }
}
