//! The time zone times are shown in: `--tz ZONE`, else this machine's, always printed
//! with its UTC offset so a time is never ambiguous.

use chrono::{DateTime, Local, Utc};
use chrono_tz::Tz;

pub enum Zone {
    Named(Tz),
    Local,
}

impl Zone {
    pub fn parse(name: Option<&str>) -> anyhow::Result<Self> {
        match name {
            None => Ok(Self::Local),
            Some(n) => n.parse::<Tz>().map(Self::Named).map_err(|_| {
                anyhow::anyhow!("unknown time zone '{n}'; hint: use an IANA name such as UTC, Europe/Paris or America/New_York")
            }),
        }
    }

    pub fn format(&self, t: DateTime<Utc>) -> String {
        const FMT: &str = "%Y-%m-%d %H:%M:%S %:z";
        match self {
            Self::Named(tz) => t.with_timezone(tz).format(FMT).to_string(),
            Self::Local => t.with_timezone(&Local).format(FMT).to_string(),
        }
    }

    /// To the microsecond: events in the same second are told apart.
    pub fn format_precise(&self, t: DateTime<Utc>) -> String {
        const FMT: &str = "%Y-%m-%d %H:%M:%S%.6f %:z";
        match self {
            Self::Named(tz) => t.with_timezone(tz).format(FMT).to_string(),
            Self::Local => t.with_timezone(&Local).format(FMT).to_string(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Named(tz) => tz.name().to_string(),
            Self::Local => format!("this machine's ({})", Local::now().format("UTC%:z")),
        }
    }
}
