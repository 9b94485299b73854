//! Push devices in and out.

use crm_kit::{Error, FieldViolation, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use crate::{
    resources::{CUSTOMER, DEVICE},
    store::devices::{DeviceRow, Registration},
};

/// A device as the API (or an event) shows it: its token whole for callers
/// who may see it (`pii`, or the customer it belongs to), else its ends.
pub fn device_to(row: &DeviceRow, show_token: bool) -> pb::Device {
    let token = if show_token {
        row.token.clone()
    } else {
        let chars: Vec<char> = row.token.chars().collect();
        match chars.len() {
            n if n > 12 => format!("{}…{}", chars[..4].iter().collect::<String>(), chars[n - 4..].iter().collect::<String>()),
            _ => "…".to_owned(),
        }
    };
    pb::Device {
        name: DEVICE.name(row.id),
        customer: CUSTOMER.name(row.customer_id),
        token,
        platform: match row.platform.as_str() {
            "ANDROID" => pb::DevicePlatform::Android,
            "IOS" => pb::DevicePlatform::Ios,
            _ => pb::DevicePlatform::Web,
        } as i32,
        app_version: row.app_version.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
    }
}

/// A RegisterDevice request's device, validated, for `customer`.
pub fn registration_from(d: &pb::Device, customer: uuid::Uuid) -> Result<Registration, Error> {
    let mut v = Vec::new();
    let token = d.token.trim().to_owned();
    if token.is_empty() || token.len() > 4096 || !token.chars().all(|c| c.is_ascii_graphic()) {
        v.push(FieldViolation::new("device.token", "INVALID_TOKEN", "an FCM registration token: 1-4096 printable ASCII characters"));
    }
    let platform = match pb::DevicePlatform::try_from(d.platform) {
        Ok(pb::DevicePlatform::Android) => "ANDROID",
        Ok(pb::DevicePlatform::Ios) => "IOS",
        Ok(pb::DevicePlatform::Web) => "WEB",
        _ => {
            v.push(FieldViolation::new(
                "device.platform",
                "INVALID_PLATFORM",
                "one of DEVICE_PLATFORM_ANDROID, DEVICE_PLATFORM_IOS, DEVICE_PLATFORM_WEB",
            ));
            ""
        }
    };
    let app_version = d.app_version.trim().to_owned();
    if app_version.chars().count() > 64 {
        v.push(FieldViolation::new("device.app_version", "TOO_LONG", "at most 64 characters"));
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok(Registration { customer_id: customer, token, platform, app_version })
}
