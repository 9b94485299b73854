//! Generated protobuf and gRPC code for the CRM suite, plus the encoded file
//! descriptor set that server reflection and the gateway read.
//!
//! # Layout
//! Modules mirror proto packages: `crm::profiles::v1`, `crm::tickets::v1`, `crm::campaigns::v1`, `crm::events::v1`,
//! `crm::webhooks::v1`, `crm::common::v1`, `crm::gateway::v1`, and the vendored `google::{api, rpc, r#type}`.
#![allow(clippy::all, missing_docs)]

/// Encoded `google.protobuf.FileDescriptorSet` of every proto in `proto/`, imports included.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/crm_descriptor.bin"));

/// The suite's own packages.
pub mod crm {
    /// Types shared by several domains.
    pub mod common {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.common.v1.rs"));
        }
    }
    /// The event envelope and the Subscribe stream.
    pub mod events {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.events.v1.rs"));
        }
    }
    /// The service domain.
    pub mod tickets {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.tickets.v1.rs"));
        }
    }
    /// The marketing domain.
    pub mod campaigns {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.campaigns.v1.rs"));
        }
    }
    /// Views the gateway composes (customer 360).
    pub mod gateway {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.gateway.v1.rs"));
        }
    }
    /// Webhook subscriptions every service serves for its own events.
    pub mod webhooks {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.webhooks.v1.rs"));
        }
    }
    /// The customer domain.
    pub mod profiles {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/crm.profiles.v1.rs"));
        }
    }
}

/// Vendored Google API protos.
pub mod google {
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
    }
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
    pub mod r#type {
        include!(concat!(env!("OUT_DIR"), "/google.r#type.rs"));
    }
}
