//! Questionnaires: their questions (checked when saved), the answers a
//! customer gives (checked against the questions), and what the answers
//! sum up to (means, NPS, choices).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::is_slug;

/// The variable a questionnaire's invitation link reaches the template in (`{{ vars.survey_link }}`).
pub const SURVEY_LINK: &str = "survey_link";

/// The most questions a questionnaire has.
pub const MAX_QUESTIONS: usize = 20;
/// The longest free-text answer.
pub const MAX_TEXT: usize = 2000;

/// What kind of answer a question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 1-5.
    Rating,
    /// 0-10.
    Nps,
    Choice,
    Text,
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub kind: Kind,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

/// An answer to a question: a score (rating, NPS) or a text (choice, text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    #[serde(default)]
    pub score: i32,
    #[serde(default)]
    pub text: String,
}

/// Every problem of `questions`: (field, reason, message).
pub fn check(questions: &[Question]) -> Vec<(String, &'static str, String)> {
    let mut problems = Vec::new();
    if questions.is_empty() || questions.len() > MAX_QUESTIONS {
        problems.push(("questionnaire.questions".to_owned(), "INVALID_QUESTIONS", format!("1-{MAX_QUESTIONS} questions")));
    }
    for (i, q) in questions.iter().enumerate() {
        let field = format!("questionnaire.questions[{i}]");
        if !is_slug(&q.id) || questions[..i].iter().any(|o| o.id == q.id) {
            problems.push((format!("{field}.id"), "INVALID_QUESTION_ID", "unique, 1-63 lowercase letters, digits and hyphens".to_owned()));
        }
        if q.text.trim().is_empty() || q.text.chars().count() > 500 {
            problems.push((format!("{field}.text"), "INVALID_TEXT", "1-500 characters".to_owned()));
        }
        let options_fine = match q.kind {
            Kind::Choice => {
                (2..=10).contains(&q.options.len()) && q.options.iter().all(|o| !o.trim().is_empty() && o.chars().count() <= 100)
            }
            _ => q.options.is_empty(),
        };
        if !options_fine {
            problems.push((
                format!("{field}.options"),
                "INVALID_OPTIONS",
                "a choice has 2-10 options of 1-100 characters; other kinds none".to_owned(),
            ));
        }
    }
    problems
}

/// `answers` checked against `questions`: every problem as (field, reason, message).
pub fn check_answers(questions: &[Question], answers: &[Answer]) -> Vec<(String, &'static str, String)> {
    let mut problems = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let field = format!("answers[{i}]");
        let Some(q) = questions.iter().find(|q| q.id == a.question) else {
            problems.push((format!("{field}.question"), "UNKNOWN_QUESTION", format!("{:?} is not a question here", a.question)));
            continue;
        };
        if answers[..i].iter().any(|o| o.question == a.question) {
            problems.push((format!("{field}.question"), "DUPLICATE_ANSWER", "one answer per question".to_owned()));
        }
        let fine = match q.kind {
            Kind::Rating => (1..=5).contains(&a.score),
            Kind::Nps => (0..=10).contains(&a.score),
            Kind::Choice => q.options.contains(&a.text),
            Kind::Text => !a.text.trim().is_empty() && a.text.chars().count() <= MAX_TEXT,
        };
        if !fine {
            let wanted = match q.kind {
                Kind::Rating => "a score of 1-5".to_owned(),
                Kind::Nps => "a score of 0-10".to_owned(),
                Kind::Choice => format!("one of: {}", q.options.join(", ")),
                Kind::Text => format!("a text of 1-{MAX_TEXT} characters"),
            };
            problems.push((field, "INVALID_ANSWER", wanted));
        }
    }
    for q in questions.iter().filter(|q| q.required && !answers.iter().any(|a| a.question == q.id)) {
        problems.push(("answers".to_owned(), "MISSING_ANSWER", format!("{:?} needs an answer", q.id)));
    }
    problems
}

/// The answer an SMS reply `text` gives to the first of `questions`: a
/// number for a rating or NPS, an option (or its number, from 1) for a
/// choice, the text itself for a text question; None when it does not fit,
/// or when another question needs an answer a single reply cannot give.
pub fn reply_answer(questions: &[Question], text: &str) -> Option<Answer> {
    let first = questions.first()?;
    let text = text.trim();
    let answer = match first.kind {
        Kind::Rating | Kind::Nps => Answer { question: first.id.clone(), score: text.parse().ok()?, text: String::new() },
        Kind::Choice => {
            let chosen = match text.parse::<usize>() {
                Ok(n) if (1..=first.options.len()).contains(&n) => first.options[n - 1].clone(),
                _ => first.options.iter().find(|o| o.eq_ignore_ascii_case(text))?.clone(),
            };
            Answer { question: first.id.clone(), score: 0, text: chosen }
        }
        Kind::Text => Answer { question: first.id.clone(), score: 0, text: text.to_owned() },
    };
    let answers = [answer];
    check_answers(questions, &answers).is_empty().then(|| answers.into_iter().next()).flatten()
}

/// One question's results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub answers: i64,
    pub mean: f64,
    /// % promoters minus % detractors, for NPS questions.
    pub nps: f64,
    pub choices: BTreeMap<String, i64>,
}

/// Each question's results from the answered invitations' `answers`.
pub fn summarize(questions: &[Question], answered: &[Vec<Answer>]) -> Vec<(String, Summary)> {
    questions
        .iter()
        .map(|q| {
            let given: Vec<&Answer> = answered.iter().flatten().filter(|a| a.question == q.id).collect();
            let mut summary = Summary { answers: given.len() as i64, ..Summary::default() };
            if matches!(q.kind, Kind::Rating | Kind::Nps) && !given.is_empty() {
                summary.mean = given.iter().map(|a| f64::from(a.score)).sum::<f64>() / given.len() as f64;
            }
            if q.kind == Kind::Nps && !given.is_empty() {
                let promoters = given.iter().filter(|a| a.score >= 9).count() as f64;
                let detractors = given.iter().filter(|a| a.score <= 6).count() as f64;
                summary.nps = (promoters - detractors) * 100.0 / given.len() as f64;
            }
            if q.kind == Kind::Choice {
                for a in &given {
                    *summary.choices.entry(a.text.clone()).or_default() += 1;
                }
            }
            (q.id.clone(), summary)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn questions() -> Vec<Question> {
        let q = |id: &str, kind, options: &[&str], required| Question {
            id: id.into(),
            text: "?".into(),
            kind,
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            required,
        };
        vec![
            q("service", Kind::Rating, &[], true),
            q("recommend", Kind::Nps, &[], false),
            q("channel", Kind::Choice, &["phone", "chat"], false),
        ]
    }

    fn answer(question: &str, score: i32, text: &str) -> Answer {
        Answer { question: question.into(), score, text: text.into() }
    }

    #[test]
    fn answers_are_checked_against_their_questions() {
        let qs = questions();
        assert!(check(&qs).is_empty());
        assert!(check_answers(&qs, &[answer("service", 5, ""), answer("channel", 0, "chat")]).is_empty());
        let reasons: Vec<&str> = check_answers(&qs, &[answer("service", 6, ""), answer("nope", 1, ""), answer("channel", 0, "fax")])
            .into_iter()
            .map(|(_, r, _)| r)
            .collect();
        assert_eq!(reasons, ["INVALID_ANSWER", "UNKNOWN_QUESTION", "INVALID_ANSWER"]);
        assert_eq!(check_answers(&qs, &[answer("recommend", 9, "")])[0].1, "MISSING_ANSWER");
    }

    #[test]
    fn an_sms_reply_answers_the_first_question_when_nothing_else_is_required() {
        let nps = vec![Question { id: "recommend".into(), text: "?".into(), kind: Kind::Nps, options: vec![], required: true }];
        assert_eq!(reply_answer(&nps, " 9 "), Some(answer("recommend", 9, "")));
        assert_eq!(reply_answer(&nps, "11"), None);
        assert_eq!(reply_answer(&nps, "great"), None);
        let choice = vec![Question {
            id: "channel".into(),
            text: "?".into(),
            kind: Kind::Choice,
            options: vec!["phone".into(), "chat".into()],
            required: false,
        }];
        assert_eq!(reply_answer(&choice, "2"), Some(answer("channel", 0, "chat")));
        assert_eq!(reply_answer(&choice, "PHONE"), Some(answer("channel", 0, "phone")));
        // "service" is required and the reply answers only "recommend"... the first question here is the rating.
        assert_eq!(reply_answer(&questions(), "4"), Some(answer("service", 4, "")));
        let mut two_required = questions();
        two_required[1].required = true;
        assert_eq!(reply_answer(&two_required, "4"), None, "a second required question needs the link");
    }

    #[test]
    fn results_sum_up_means_nps_and_choices() {
        let qs = questions();
        let answered = vec![
            vec![answer("service", 5, ""), answer("recommend", 10, ""), answer("channel", 0, "chat")],
            vec![answer("service", 3, ""), answer("recommend", 9, "")],
            vec![answer("service", 4, ""), answer("recommend", 2, ""), answer("channel", 0, "chat")],
        ];
        let results: BTreeMap<String, Summary> = summarize(&qs, &answered).into_iter().collect();
        assert_eq!(results["service"].mean, 4.0);
        // Two promoters, one detractor of three: NPS 33.3.
        assert!((results["recommend"].nps - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(results["channel"].choices["chat"], 2);
    }
}
