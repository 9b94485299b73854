//! The pure half of importing transactions (交易记录导入): the fields a
//! column can fill, their header names in Chinese and English, and the cells
//! that need reading — amounts as lists write them ("1,234.50", "¥88"), the
//! kind (购买/退款), occur times with or without an offset, and line items as
//! an export writes them ("product × quantity @ unit price"). No I/O.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::import::{Suggestion, field_named, name_of, suggest_among};

/// A transaction field a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionField {
    /// Whose it is, by resource name ("customers/{id}", as an export writes it).
    Customer,
    /// Whose it is, by one of their email addresses.
    CustomerEmail,
    /// Whose it is, by one of their phone numbers.
    CustomerPhone,
    /// Whose it is, by their external id (the customer attribute "external_id").
    CustomerExternalId,
    /// The recording system's id: what makes a row recorded once.
    ExternalId,
    Kind,
    /// In major units ("123.45").
    Amount,
    CurrencyCode,
    OccurTime,
    Channel,
    Store,
    /// Every item in one cell, as an export writes them.
    LineItems,
    /// One item per row: its product, sku, quantity and unit price.
    Product,
    Sku,
    Quantity,
    UnitPrice,
}

/// The fields, as the API names them.
const NAMES: &[(TransactionField, &str)] = &[
    (TransactionField::Customer, "customer"),
    (TransactionField::CustomerEmail, "customer_email"),
    (TransactionField::CustomerPhone, "customer_phone"),
    (TransactionField::CustomerExternalId, "customer_external_id"),
    (TransactionField::ExternalId, "external_id"),
    (TransactionField::Kind, "kind"),
    (TransactionField::Amount, "amount"),
    (TransactionField::CurrencyCode, "currency_code"),
    (TransactionField::OccurTime, "occur_time"),
    (TransactionField::Channel, "channel"),
    (TransactionField::Store, "store"),
    (TransactionField::LineItems, "line_items"),
    (TransactionField::Product, "product"),
    (TransactionField::Sku, "sku"),
    (TransactionField::Quantity, "quantity"),
    (TransactionField::UnitPrice, "unit_price"),
];

/// The fields of a one-item-per-row sheet.
pub const ITEM_FIELDS: [TransactionField; 4] =
    [TransactionField::Product, TransactionField::Sku, TransactionField::Quantity, TransactionField::UnitPrice];

impl TransactionField {
    /// The field named `name`; None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        field_named(NAMES, name)
    }

    /// Its name, as [`TransactionField::parse`] reads it.
    pub fn name(self) -> &'static str {
        name_of(NAMES, &self)
    }
}

/// Header names of each field, normalised (see [`super::import::normalise`]).
const SYNONYMS: &[(TransactionField, &[&str])] = &[
    (TransactionField::Customer, &["customer", "customerresourcename"]),
    (TransactionField::CustomerEmail, &["邮箱", "电子邮件", "客户邮箱", "会员邮箱", "email", "customeremail", "emailaddress"]),
    (
        TransactionField::CustomerPhone,
        &["手机", "手机号", "手机号码", "电话", "联系电话", "客户手机", "会员手机", "phone", "mobile", "customerphone", "phonenumber"],
    ),
    (
        TransactionField::CustomerExternalId,
        &["客户编号", "会员编号", "会员号", "会员卡号", "customerid", "customerexternalid", "customerno", "memberid", "memberno"],
    ),
    (
        TransactionField::ExternalId,
        &[
            "订单",
            "订单号",
            "订单编号",
            "交易号",
            "交易编号",
            "流水号",
            "单号",
            "id",
            "externalid",
            "order",
            "orderid",
            "orderno",
            "ordernumber",
            "transactionid",
        ],
    ),
    (TransactionField::Kind, &["类型", "交易类型", "kind", "type", "transactiontype"]),
    (TransactionField::Amount, &["金额", "交易金额", "订单金额", "实付金额", "消费金额", "amount", "total", "totalamount"]),
    (TransactionField::CurrencyCode, &["币种", "货币", "currency", "currencycode"]),
    (
        TransactionField::OccurTime,
        &["时间", "交易时间", "下单时间", "消费时间", "日期", "交易日期", "occurtime", "date", "time", "orderdate", "transactiontime"],
    ),
    (TransactionField::Channel, &["渠道", "来源", "channel", "source"]),
    (TransactionField::Store, &["门店", "店铺", "商店", "store", "shop", "outlet"]),
    (TransactionField::LineItems, &["商品明细", "明细", "lineitems", "items"]),
    (TransactionField::Product, &["商品", "商品名称", "产品", "产品名称", "product", "productname", "item"]),
    (TransactionField::Sku, &["货号", "商品编码", "sku"]),
    (TransactionField::Quantity, &["数量", "件数", "quantity", "qty"]),
    (TransactionField::UnitPrice, &["单价", "unitprice", "price"]),
];

/// The column correspondence suggested for a transaction sheet with `headers`.
pub fn suggest(headers: &[String]) -> Vec<Suggestion<TransactionField>> {
    suggest_among(headers, SYNONYMS, |_| false)
}

/// Currency signs a list may put before an amount.
const CURRENCY_SIGNS: [char; 6] = ['¥', '￥', '$', '€', '£', '元'];

/// An amount as a list writes it ("1,234.50", "¥88", "88元", "-5") as
/// (whole units, nanos) of `google.type.Money`; None when it is not a number
/// or has more than nine decimals.
pub fn parse_amount(cell: &str) -> Option<(i64, i32)> {
    let text: String = cell.chars().filter(|c| !c.is_whitespace() && *c != ',' && !CURRENCY_SIGNS.contains(c)).collect();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let units: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let nanos: i32 = format!("{fraction:0<9}").parse().ok()?;
    Some(if negative { (-units, -nanos) } else { (units, nanos) })
}

/// The kind a cell names: "PURCHASE"/"REFUND" (any case, with or without
/// "TRANSACTION_KIND_"), or 购买/消费/销售/购物 and 退款/退货; None otherwise.
pub fn parse_kind(cell: &str) -> Option<&'static str> {
    let upper = cell.trim().to_uppercase();
    match upper.strip_prefix("TRANSACTION_KIND_").unwrap_or(&upper) {
        "PURCHASE" | "SALE" | "购买" | "消费" | "销售" | "购物" => Some("PURCHASE"),
        "REFUND" | "RETURN" | "退款" | "退货" => Some("REFUND"),
        _ => None,
    }
}

/// The local times a list may write, most specific first.
const LOCAL_TIMES: [&str; 8] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
    "%Y.%m.%d %H:%M:%S",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
];

/// The local dates a list may write (midnight).
const LOCAL_DATES: [&str; 4] = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"];

/// When a cell says something happened: RFC 3339 with its offset, or a
/// local time or date in `zone` (a time that does not exist there, skipped
/// by a clock change, is None; one that happens twice is the earlier).
pub fn parse_time<Z: TimeZone>(cell: &str, zone: &Z) -> Option<DateTime<Utc>> {
    let cell = cell.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(cell) {
        return Some(t.with_timezone(&Utc));
    }
    let local = LOCAL_TIMES
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(cell, f).ok())
        .or_else(|| LOCAL_DATES.iter().find_map(|f| NaiveDate::parse_from_str(cell, f).ok()).and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    zone.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc))
}

/// One item of a line-items cell, its price as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemText<'a> {
    pub product: Cow<'a, str>,
    pub quantity: i32,
    pub unit_price: &'a str,
}

/// The items of a cell as an export writes them — "product × quantity @
/// unit price", "; "-separated (also "x" or "*" for "×", and a full-width
/// "；") — read from the right, so a product's name may hold " @ ". Err:
/// the 0-based item that cannot be read.
pub fn parse_line_items(cell: &str) -> Result<Vec<ItemText<'_>>, usize> {
    let mut items = Vec::new();
    for (i, part) in cell.split([';', '；']).map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        let (left, price) = part.rsplit_once('@').ok_or(i)?;
        let (product, quantity) = left.trim_end().rsplit_once(['×', 'x', 'X', '*']).ok_or(i)?;
        let quantity: i32 = quantity.trim().parse().map_err(|_| i)?;
        items.push(ItemText { product: Cow::Borrowed(product.trim()), quantity, unit_price: price.trim() });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back_by_its_name() {
        for (field, name) in NAMES {
            assert_eq!(TransactionField::parse(name), Some(*field));
            assert_eq!(field.name(), *name);
        }
        assert_eq!(TransactionField::parse("email"), None, "a customer's field is not a transaction's");
    }

    #[test]
    fn chinese_and_english_headers_are_suggested_and_an_export_maps_back() {
        let headers: Vec<String> = ["会员手机", "订单号", "交易时间", "实付金额", "门店", "商品", "数量", "单价", "备注"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        let fields: Vec<Option<TransactionField>> = suggest(&headers).into_iter().map(|s| s.field).collect();
        use TransactionField::*;
        assert_eq!(
            fields,
            [
                Some(CustomerPhone),
                Some(ExternalId),
                Some(OccurTime),
                Some(Amount),
                Some(Store),
                Some(Product),
                Some(Quantity),
                Some(UnitPrice),
                None
            ]
        );
        // The header a transactions export writes.
        let export: Vec<String> = [
            "resource_name",
            "customer",
            "external_id",
            "kind",
            "currency_code",
            "amount",
            "occur_time",
            "channel",
            "store",
            "line_items",
            "create_time",
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
        let suggested = suggest(&export);
        for (header, s) in export.iter().zip(&suggested) {
            match header.as_str() {
                "resource_name" | "create_time" => assert_eq!(s.field, None, "{header}"),
                name => assert_eq!(s.field, TransactionField::parse(name), "{header}"),
            }
        }
    }

    #[test]
    fn amounts_are_read_as_lists_write_them() {
        assert_eq!(parse_amount("1,234.50"), Some((1234, 500_000_000)));
        assert_eq!(parse_amount("¥88"), Some((88, 0)));
        assert_eq!(parse_amount("88元"), Some((88, 0)));
        assert_eq!(parse_amount(" .5 "), Some((0, 500_000_000)));
        assert_eq!(parse_amount("-5.25"), Some((-5, -250_000_000)));
        for bad in ["", "abc", "1.2.3", "1.0000000001", "-", "1e5"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn kinds_and_times_are_read_in_chinese_and_english() {
        assert_eq!(parse_kind("purchase"), Some("PURCHASE"));
        assert_eq!(parse_kind("TRANSACTION_KIND_REFUND"), Some("REFUND"));
        assert_eq!(parse_kind("退货"), Some("REFUND"));
        assert_eq!(parse_kind("gift"), None);
        let shanghai = chrono_tz::Asia::Shanghai;
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc());
        assert_eq!(parse_time("2026-11-27 10:30:00", &shanghai), at("2026-11-27 02:30:00"));
        assert_eq!(parse_time("2026/11/27 10:30", &shanghai), at("2026-11-27 02:30:00"));
        assert_eq!(parse_time("2026年11月27日", &shanghai), at("2026-11-26 16:00:00"));
        assert_eq!(parse_time("2026-11-27T10:30:00+01:00", &shanghai), at("2026-11-27 09:30:00"));
        assert_eq!(parse_time("2026-11-27", &Utc), at("2026-11-27 00:00:00"));
        assert_eq!(parse_time("yesterday", &Utc), None);
        // 02:30 on 2026-03-08 does not exist in New York (the clocks skip it).
        assert_eq!(parse_time("2026-03-08 02:30", &chrono_tz::America::New_York), None);
    }

    #[test]
    fn line_items_are_read_as_an_export_writes_them() {
        let items = parse_line_items("Tea × 2 @ 3.50; Cup @ home x 1 @ 12；Pot*1@0").unwrap();
        let read: Vec<(&str, i32, &str)> = items.iter().map(|i| (i.product.as_ref(), i.quantity, i.unit_price)).collect();
        assert_eq!(read, [("Tea", 2, "3.50"), ("Cup @ home", 1, "12"), ("Pot", 1, "0")]);
        assert_eq!(parse_line_items("").unwrap(), []);
        assert_eq!(parse_line_items("Tea × 2 @ 3.50; Tea"), Err(1));
        assert_eq!(parse_line_items("Tea × two @ 3"), Err(0));
    }
}
