//! The pure half of importing related persons (客户成员导入): the fields a
//! column can fill, their header names in Chinese and English, and the
//! cells that need reading (the relation, the gender). No I/O.

use super::import::{Suggestion, field_named, name_of, suggest_among};

/// A related-person field a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonField {
    /// Whose they are, by resource name ("customers/{id}").
    Customer,
    /// Whose they are, by one of the customer's email addresses.
    CustomerEmail,
    /// Whose they are, by one of the customer's phone numbers.
    CustomerPhone,
    /// Whose they are, by the customer's external id.
    CustomerExternalId,
    DisplayName,
    Relation,
    /// The person's own phone number (several columns may each hold some).
    Phone,
    /// The person's own email address (several columns may each hold some).
    Email,
    Gender,
    Birthday,
    Note,
    /// Their own customer record, "customers/{id}".
    LinkedCustomer,
}

/// The fields, as the API names them.
const NAMES: &[(PersonField, &str)] = &[
    (PersonField::Customer, "customer"),
    (PersonField::CustomerEmail, "customer_email"),
    (PersonField::CustomerPhone, "customer_phone"),
    (PersonField::CustomerExternalId, "customer_external_id"),
    (PersonField::DisplayName, "display_name"),
    (PersonField::Relation, "relation"),
    (PersonField::Phone, "phone"),
    (PersonField::Email, "email"),
    (PersonField::Gender, "gender"),
    (PersonField::Birthday, "birthday"),
    (PersonField::Note, "note"),
    (PersonField::LinkedCustomer, "linked_customer"),
];

impl PersonField {
    /// The field named `name`; None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        field_named(NAMES, name)
    }

    /// Its name, as [`PersonField::parse`] reads it.
    pub fn name(self) -> &'static str {
        name_of(NAMES, &self)
    }

    /// Whether several columns may fill it.
    pub fn repeats(self) -> bool {
        matches!(self, Self::Phone | Self::Email)
    }

    /// Whether its cells are personal data, shown masked to callers without `pii`.
    pub fn personal(self) -> bool {
        !matches!(self, Self::Customer | Self::CustomerExternalId | Self::Relation | Self::LinkedCustomer)
    }
}

/// Header names of each field, normalised (see [`super::import::normalise`]).
/// A sheet of members names the member's own contacts plainly ("手机") and
/// the customer's with the customer ("客户手机").
const SYNONYMS: &[(PersonField, &[&str])] = &[
    (PersonField::Customer, &["customer"]),
    (PersonField::CustomerEmail, &["客户邮箱", "customeremail"]),
    (PersonField::CustomerPhone, &["客户手机", "客户电话", "客户手机号", "customerphone", "customermobile"]),
    (PersonField::CustomerExternalId, &["客户编号", "会员编号", "会员号", "customerid", "customerexternalid", "customerno", "memberid"]),
    (PersonField::DisplayName, &["姓名", "成员姓名", "成员", "名字", "name", "displayname", "fullname", "personname"]),
    (PersonField::Relation, &["关系", "与客户关系", "成员关系", "relation", "relationship"]),
    (PersonField::Phone, &["手机", "手机号", "电话", "联系电话", "成员手机", "phone", "mobile", "phonenumber", "tel"]),
    (PersonField::Email, &["邮箱", "电子邮件", "成员邮箱", "email", "emailaddress"]),
    (PersonField::Gender, &["性别", "gender", "sex"]),
    (PersonField::Birthday, &["生日", "出生日期", "birthday", "birthdate", "dateofbirth", "dob"]),
    (PersonField::Note, &["备注", "说明", "note", "notes", "remark", "comment"]),
    (PersonField::LinkedCustomer, &["linkedcustomer"]),
];

/// The column correspondence suggested for a sheet of related persons with `headers`.
pub fn suggest(headers: &[String]) -> Vec<Suggestion<PersonField>> {
    suggest_among(headers, SYNONYMS, |f| f.repeats())
}

/// The relation a cell names: the API's (SPOUSE, CHILD, ... with or
/// without "RELATION_", any case) or the usual Chinese words; None otherwise.
pub fn parse_relation(cell: &str) -> Option<&'static str> {
    let upper = cell.trim().to_uppercase();
    Some(match upper.strip_prefix("RELATION_").unwrap_or(&upper) {
        "SPOUSE" | "WIFE" | "HUSBAND" | "PARTNER" | "配偶" | "夫妻" | "丈夫" | "妻子" | "爱人" | "老公" | "老婆" => "SPOUSE",
        "CHILD" | "SON" | "DAUGHTER" | "子女" | "儿子" | "女儿" | "孩子" => "CHILD",
        "PARENT" | "FATHER" | "MOTHER" | "父母" | "父亲" | "母亲" | "爸爸" | "妈妈" => "PARENT",
        "RELATIVE" | "亲属" | "亲戚" | "家属" | "兄弟" | "姐妹" => "RELATIVE",
        "COLLEAGUE" | "同事" => "COLLEAGUE",
        "ASSISTANT" | "SECRETARY" | "助理" | "秘书" => "ASSISTANT",
        "OTHER" | "其他" | "其它" => "OTHER",
        _ => return None,
    })
}

/// The gender a cell names: FEMALE, MALE or OTHER (any case, with or
/// without "GENDER_"), F/M, 女/男/其他; None otherwise.
pub fn parse_gender(cell: &str) -> Option<&'static str> {
    let upper = cell.trim().to_uppercase();
    Some(match upper.strip_prefix("GENDER_").unwrap_or(&upper) {
        "FEMALE" | "F" | "女" | "女性" => "FEMALE",
        "MALE" | "M" | "男" | "男性" => "MALE",
        "OTHER" | "其他" | "其它" => "OTHER",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back_by_its_name() {
        for (field, name) in NAMES {
            assert_eq!(PersonField::parse(name), Some(*field));
            assert_eq!(field.name(), *name);
        }
    }

    #[test]
    fn a_members_sheet_is_suggested_with_the_customer_apart_from_the_member() {
        let headers: Vec<String> =
            ["客户手机", "成员姓名", "关系", "手机", "性别", "生日", "备注"].iter().map(|h| (*h).to_owned()).collect();
        let fields: Vec<Option<PersonField>> = suggest(&headers).into_iter().map(|s| s.field).collect();
        use PersonField::*;
        assert_eq!(fields, [Some(CustomerPhone), Some(DisplayName), Some(Relation), Some(Phone), Some(Gender), Some(Birthday), Some(Note)]);
    }

    #[test]
    fn relations_and_genders_are_read_in_chinese_and_english() {
        assert_eq!(parse_relation("妻子"), Some("SPOUSE"));
        assert_eq!(parse_relation("relation_child"), Some("CHILD"));
        assert_eq!(parse_relation("母亲"), Some("PARENT"));
        assert_eq!(parse_relation("neighbour"), None);
        assert_eq!(parse_gender("女"), Some("FEMALE"));
        assert_eq!(parse_gender("m"), Some("MALE"));
        assert_eq!(parse_gender("?"), None);
    }
}
