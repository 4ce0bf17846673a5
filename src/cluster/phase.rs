//! Typed phases of the objects wavelift follows. Each enum names the phases wavelift acts
//! on and keeps any other as `Unknown(text)`: clusters add phases between releases, and an
//! unmodelled phase must read back as exactly what the cluster said. Serialised as the plain
//! string, so typed objects round-trip unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! phase_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A phase this version does not model, as the cluster spelled it.
            Unknown(String),
        }

        impl $name {
            /// The phase as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown(s) => s,
                }
            }

            /// Reads a phase; anything unmodelled is kept as `Unknown`.
            pub fn parse(s: &str) -> $name {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name::parse(s)
            }
        }

        /// Compares with the API's spelling (`phase == "Succeeded"`).
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

phase_enum! {
    /// CDI `DataVolumePhase` (containerized-data-importer
    /// `staging/src/kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1/types.go`).
    DvPhase {
        Pending = "Pending",
        PvcBound = "PVCBound",
        ImportScheduled = "ImportScheduled",
        ImportInProgress = "ImportInProgress",
        /// Between the stages of a multi-stage (warm) import.
        Paused = "Paused",
        /// The StorageClass binds on first use and nothing consumes the PVC yet.
        WaitForFirstConsumer = "WaitForFirstConsumer",
        /// A volume populator fills a hidden `prime-*` PVC.
        PendingPopulation = "PendingPopulation",
        Succeeded = "Succeeded",
        Failed = "Failed",
    }
}

phase_enum! {
    /// KubeVirt `VirtualMachineInstancePhase` (kubevirt `staging/src/kubevirt.io/api/core/v1/types.go`).
    VmiPhase {
        Pending = "Pending",
        Scheduling = "Scheduling",
        Scheduled = "Scheduled",
        Running = "Running",
        Succeeded = "Succeeded",
        Failed = "Failed",
    }
}

phase_enum! {
    /// KubeVirt `VirtualMachineInstanceMigrationPhase` (same file).
    MigrationPhase {
        Pending = "Pending",
        Scheduling = "Scheduling",
        Scheduled = "Scheduled",
        PreparingTarget = "PreparingTarget",
        TargetReady = "TargetReady",
        Running = "Running",
        Succeeded = "Succeeded",
        Failed = "Failed",
    }
}

impl MigrationPhase {
    /// The migration ended (either way).
    pub fn is_final(&self) -> bool {
        matches!(self, MigrationPhase::Succeeded | MigrationPhase::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_including_unmodelled_ones() {
        for text in [
            "ImportInProgress",
            "PVCBound",
            "CloneScheduled",
            "Unknown",
            "",
        ] {
            let p: DvPhase = serde_json::from_value(serde_json::json!(text)).expect("phase");
            assert_eq!(
                serde_json::to_value(&p).expect("json"),
                serde_json::json!(text)
            );
        }
        assert_eq!(DvPhase::parse("PVCBound"), DvPhase::PvcBound);
        assert_eq!(
            VmiPhase::parse("Unknown"),
            VmiPhase::Unknown("Unknown".into())
        );
        assert_eq!(
            MigrationPhase::parse("TargetReady").to_string(),
            "TargetReady"
        );
        assert!(MigrationPhase::Failed.is_final() && !MigrationPhase::Running.is_final());
    }
}
