//! Built-in care-message journeys: ready-made journeys a tenant starts from
//! and edits — a birthday greeting with a gift of points, and greetings for
//! the Spring Festival, the Dragon Boat Festival and the Mid-Autumn
//! Festival. Each comes with its greeting card, an email template in
//! Chinese and English that becomes the tenant's own to edit.

use std::collections::BTreeMap;

use super::{
    channel::{Channel, Purpose},
    journey::{Action, Definition, Reentry, Step, Trigger},
    template::{Content, TemplateDraft},
};

/// A built-in journey.
#[derive(Debug, Clone, Copy)]
pub struct Blueprint {
    pub id: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    /// None: a birthday; else the built-in holiday's id.
    pub holiday: Option<&'static str>,
    /// Local time of the greeting, minutes after midnight.
    pub minute_of_day: u16,
    pub subject_zh: &'static str,
    pub body_zh: &'static str,
    pub subject_en: &'static str,
    pub body_en: &'static str,
    /// Points granted with the greeting (0: none).
    pub gift_points: i64,
}

/// The built-in journeys.
pub const BLUEPRINTS: [Blueprint; 4] = [
    Blueprint {
        id: "birthday-greeting",
        display_name: "Birthday greeting",
        description: "On each customer's birthday at 09:00 their time: a greeting card and 100 points (valid 90 days).",
        holiday: None,
        minute_of_day: 9 * 60,
        subject_zh: "生日快乐，{{ customer.display_name }}！",
        body_zh: "亲爱的{{ customer.display_name }}，祝您生日快乐！我们为您准备了 100 积分，90 天内有效。",
        subject_en: "Happy birthday, {{ customer.display_name }}!",
        body_en: "Dear {{ customer.display_name }}, happy birthday! There are 100 points waiting for you, valid for 90 days.",
        gift_points: 100,
    },
    Blueprint {
        id: "spring-festival-greeting",
        display_name: "Spring Festival greeting",
        description: "On the first day of the lunar year at 09:00 each customer's time: a New Year card.",
        holiday: Some("spring-festival"),
        minute_of_day: 9 * 60,
        subject_zh: "新春快乐，{{ customer.display_name }}！",
        body_zh: "亲爱的{{ customer.display_name }}，恭贺新禧，万事如意！",
        subject_en: "Happy Chinese New Year, {{ customer.display_name }}!",
        body_en: "Dear {{ customer.display_name }}, we wish you a happy and prosperous New Year!",
        gift_points: 0,
    },
    Blueprint {
        id: "dragon-boat-greeting",
        display_name: "Dragon Boat Festival greeting",
        description: "On the fifth day of the fifth lunar month at 09:00 each customer's time: a festival card.",
        holiday: Some("dragon-boat-festival"),
        minute_of_day: 9 * 60,
        subject_zh: "端午安康，{{ customer.display_name }}",
        body_zh: "亲爱的{{ customer.display_name }}，端午佳节，祝您安康！",
        subject_en: "Happy Dragon Boat Festival, {{ customer.display_name }}",
        body_en: "Dear {{ customer.display_name }}, wishing you health and happiness this Dragon Boat Festival!",
        gift_points: 0,
    },
    Blueprint {
        id: "mid-autumn-greeting",
        display_name: "Mid-Autumn greeting",
        description: "On the fifteenth day of the eighth lunar month at 10:00 each customer's time: a moon-festival card.",
        holiday: Some("mid-autumn-festival"),
        minute_of_day: 10 * 60,
        subject_zh: "中秋快乐，{{ customer.display_name }}",
        body_zh: "亲爱的{{ customer.display_name }}，月圆人团圆，祝您中秋快乐！",
        subject_en: "Happy Mid-Autumn Festival, {{ customer.display_name }}",
        body_en: "Dear {{ customer.display_name }}, may the full moon bring you and yours joy this Mid-Autumn Festival!",
        gift_points: 0,
    },
];

/// The built-in journey `id`.
pub fn blueprint(id: &str) -> Option<&'static Blueprint> {
    BLUEPRINTS.iter().find(|b| b.id == id)
}

impl Blueprint {
    /// Its greeting card, as a template to create.
    pub fn card(&self) -> TemplateDraft {
        let content = |locale: &str, subject: &str, body: &str| Content {
            locale: locale.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            html_body: String::new(),
            data: BTreeMap::new(),
        };
        TemplateDraft {
            display_name: format!("{} card", self.display_name),
            channel: Channel::Email,
            purpose: Purpose::Marketing,
            contents: vec![content("zh-CN", self.subject_zh, self.body_zh), content("en", self.subject_en, self.body_en)],
            default_locale: "zh-CN".to_owned(),
            locked_variables: Vec::new(),
        }
    }

    /// Its journey, sending the card `template` (an id).
    pub fn definition(&self, template: &str) -> Definition {
        let trigger = match self.holiday {
            None => Trigger::Birthday { minute_of_day: self.minute_of_day },
            Some(holiday) => Trigger::Holiday { holiday: holiday.to_owned(), minute_of_day: self.minute_of_day },
        };
        let gift = (self.gift_points > 0).then(|| Step {
            id: "gift".to_owned(),
            action: Action::GrantPoints { points: self.gift_points, expire_days: 90, reason: self.display_name.to_owned(), next: None },
        });
        let card = Step {
            id: "card".to_owned(),
            action: Action::Send {
                template: template.to_owned(),
                variables: BTreeMap::new(),
                next: gift.as_ref().map(|g| g.id.clone()),
                ab: None,
                questionnaire: None,
            },
        };
        Definition { trigger, steps: std::iter::once(card).chain(gift).collect(), reentry: Reentry::Never, exit_on_purchase: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{holidays::built_in, template};

    #[test]
    fn every_blueprint_is_a_valid_journey_with_a_valid_card_on_a_built_in_holiday() {
        for b in BLUEPRINTS {
            assert!(b.definition("t").check().is_empty(), "{}", b.id);
            assert!(template::check(&b.card(), "template").is_ok(), "{}", b.id);
            assert!(b.holiday.is_none_or(|h| built_in(h).is_some()), "{}", b.id);
        }
        assert_eq!(blueprint("birthday-greeting").unwrap().definition("t").steps.len(), 2);
        assert!(blueprint("nope").is_none());
    }
}
