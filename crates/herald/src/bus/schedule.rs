//! Scheduled rules: `rate(5 minutes)` and `cron(0 12 * * ? *)`, as
//! EventBridge writes them (UTC; cron's six fields are minutes, hours,
//! day of month, month, day of week `1-7` = `SUN-SAT`, year; one of the
//! two day fields is `?`). Herald reads `*`, `?`, numbers, names
//! (`JAN`, `MON`), ranges, lists and `/` steps; `L`, `W` and `#` are refused
//! when the rule is created rather than misread.
//!
//! When a rule is due, its own event (`"detail-type": "Scheduled Event"`,
//! `"source": "aws.events"`, the rule's ARN in `resources`) goes into the
//! log marked for that rule, so it is as durable as any other. A rate rule
//! first fires one period after this node first sees it. In a cluster one
//! node at a time runs the schedule (a lease in the store), so each firing
//! happens once.

use super::log::NewEvent;
use super::spec::DEFAULT_BUS;
use super::EventBuses;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every so many seconds.
    Rate(u64),
    Cron(Box<Cron>),
}

/// Allowed values per cron field.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    /// `None`: `?`.
    days: Option<Vec<bool>>,
    months: Vec<bool>,
    /// 0 = Sunday; `None`: `?`.
    weekdays: Option<Vec<bool>>,
    /// `None`: any year.
    years: Option<Vec<bool>>,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let invalid = || "Parameter ScheduleExpression is not valid.".to_string();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let (n, unit) = inner.trim().split_once(' ').ok_or_else(invalid)?;
            let n: u64 = n.parse().map_err(|_| invalid())?;
            let secs = match (n, unit.trim()) {
                (0, _) => return Err(invalid()),
                (1, "minute") | (2.., "minutes") => 60,
                (1, "hour") | (2.., "hours") => 3600,
                (1, "day") | (2.., "days") => 86_400,
                _ => return Err(invalid()),
            };
            return Ok(Schedule::Rate(n * secs));
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            let f: Vec<&str> = inner.split_whitespace().collect();
            if f.len() != 6 {
                return Err(invalid());
            }
            if (f[2] == "?") == (f[4] == "?") {
                return Err(format!(
                    "{} (one of day-of-month and day-of-week must be ?)",
                    invalid()
                ));
            }
            let any = |s: &str| s == "?";
            return Ok(Schedule::Cron(Box::new(Cron {
                minutes: field(f[0], 0, 59, &[])?,
                hours: field(f[1], 0, 23, &[])?,
                days: if any(f[2]) {
                    None
                } else {
                    Some(field(f[2], 1, 31, &[])?)
                },
                months: field(f[3], 1, 12, MONTHS)?,
                // AWS numbers days 1-7 from Sunday; stored from 0.
                weekdays: if any(f[4]) {
                    None
                } else {
                    Some(field(f[4], 1, 7, DAYS)?.into_iter().skip(1).collect())
                },
                years: if f[5] == "*" {
                    None
                } else {
                    Some(field(f[5], 1970, 2199, &[])?)
                },
            })));
        }
        Err(invalid())
    }

    /// The first firing strictly after `after` (epoch seconds), if any.
    pub fn next(&self, after: i64) -> Option<i64> {
        match self {
            Schedule::Rate(secs) => Some(after + *secs as i64),
            Schedule::Cron(c) => c.next(after),
        }
    }
}

/// One cron field as a table of allowed values `lo..=hi` (index 0 = `lo`
/// for minutes and hours; index = value for the others, so the table is
/// `hi + 1` long).
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let bad = || {
        format!("Parameter ScheduleExpression is not valid: the cron field {text} (Herald reads *, numbers, names, ranges, lists and steps)")
    };
    let mut allowed = vec![false; hi as usize + 1];
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + lo);
        }
        s.parse::<u32>()
            .ok()
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(bad)
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        if from > to {
            return Err(bad());
        }
        for v in (from..=to).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Ok(allowed)
}

impl Cron {
    fn next(&self, after: i64) -> Option<i64> {
        // Minute by minute, at most about four years ahead (a day that
        // never comes, like 31 February, ends the search).
        let mut t = (after / 60 + 1) * 60;
        let end = after + 4 * 366 * 86_400;
        while t <= end {
            let dt = time::OffsetDateTime::from_unix_timestamp(t).ok()?;
            let (year, month, day) = (dt.year(), u8::from(dt.month()) as usize, dt.day() as usize);
            if !self.years.as_ref().is_none_or(|y| {
                usize::try_from(year).is_ok_and(|y2| y.get(y2).copied().unwrap_or(false))
            }) || !self.months[month]
            {
                // Next month's first minute.
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                let first =
                    time::Date::from_calendar_date(y, time::Month::try_from(m as u8).ok()?, 1)
                        .ok()?;
                t = first.midnight().assume_utc().unix_timestamp();
                continue;
            }
            let weekday = dt.weekday().number_days_from_sunday() as usize;
            let day_ok = match (&self.days, &self.weekdays) {
                (Some(d), _) => d[day],
                (None, Some(w)) => w[weekday],
                (None, None) => true,
            };
            if !day_ok {
                t = (t / 86_400 + 1) * 86_400;
                continue;
            }
            if !self.hours[dt.hour() as usize] {
                t = (t / 3600 + 1) * 3600;
                continue;
            }
            if self.minutes[dt.minute() as usize] {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

/// The lease that makes one node the scheduler.
const LEASE: &str = "events-scheduler";

/// Fire scheduled rules until `stop`.
pub async fn run(buses: Arc<EventBuses>, node: String, mut stop: watch::Receiver<bool>) {
    let mut next: HashMap<String, (String, i64)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
        let now = crate::esm::spec::now_secs();
        let view = buses.view();
        let Some(bus) = view.buses.get(DEFAULT_BUS) else {
            continue;
        };
        let scheduled: Vec<_> = bus
            .rules
            .values()
            .filter(|r| r.enabled())
            .filter_map(|r| Some((r.name.clone(), r.schedule_expression.clone()?)))
            .collect();
        next.retain(|name, _| scheduled.iter().any(|(n, _)| n == name));
        if scheduled.is_empty() {
            continue;
        }
        if buses.store().is_shared() {
            match buses.store().lease(LEASE, &node, now, 10.0).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the scheduler's lease failed");
                    continue;
                }
            }
        }
        let mut due = Vec::new();
        for (name, expr) in scheduled {
            let Ok(s) = Schedule::parse(&expr) else {
                continue;
            };
            let entry = next
                .entry(name.clone())
                .or_insert_with(|| (expr.clone(), s.next(now as i64).unwrap_or(i64::MAX)));
            if entry.0 != expr {
                *entry = (expr.clone(), s.next(now as i64).unwrap_or(i64::MAX));
            }
            if entry.1 as f64 <= now {
                let event = json!({
                    "version": "0",
                    "id": crate::new_uuid().to_string(),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": buses.account,
                    "time": super::event_time(entry.1 as f64),
                    "region": buses.region,
                    "resources": [buses.rule_arn(DEFAULT_BUS, &name)],
                    "detail": {},
                });
                due.push(NewEvent {
                    bus: DEFAULT_BUS.into(),
                    rule: Some(name.clone()),
                    event: event.to_string(),
                    received: now,
                });
                entry.1 = s.next(now as i64).unwrap_or(i64::MAX);
            }
        }
        if !due.is_empty() {
            if let Err(e) = buses.log.append(due).await {
                tracing::error!(error = %e, "logging scheduled events failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `YYYY-MM-DDTHH:MM:SSZ` as epoch seconds.
    fn at(s: &str) -> i64 {
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
        let date = time::Date::from_calendar_date(
            n(0..4) as i32,
            time::Month::try_from(n(5..7) as u8).unwrap(),
            n(8..10) as u8,
        )
        .unwrap();
        date.midnight().assume_utc().unix_timestamp()
            + n(11..13) * 3600
            + n(14..16) * 60
            + n(17..19)
    }

    #[test]
    fn rates() {
        assert_eq!(Schedule::parse("rate(1 minute)"), Ok(Schedule::Rate(60)));
        assert_eq!(Schedule::parse("rate(5 minutes)"), Ok(Schedule::Rate(300)));
        assert_eq!(Schedule::parse("rate(2 days)"), Ok(Schedule::Rate(172_800)));
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 hours)",
            "rate(x hours)",
            "every minute",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crons() {
        let noon = Schedule::parse("cron(0 12 * * ? *)").unwrap();
        assert_eq!(
            noon.next(at("2026-11-29T08:00:00Z")),
            Some(at("2026-11-29T12:00:00Z"))
        );
        assert_eq!(
            noon.next(at("2026-11-29T12:00:00Z")),
            Some(at("2026-11-30T12:00:00Z"))
        );
        // Every 15 minutes, weekdays (MON-FRI) only: 2026-11-29 is a Sunday.
        let q = Schedule::parse("cron(0/15 * ? * MON-FRI *)").unwrap();
        assert_eq!(
            q.next(at("2026-11-29T08:00:00Z")),
            Some(at("2026-11-30T00:00:00Z"))
        );
        assert_eq!(
            q.next(at("2026-11-30T00:00:00Z")),
            Some(at("2026-11-30T00:15:00Z"))
        );
        // 10:30 on the first of January and July.
        let y = Schedule::parse("cron(30 10 1 JAN,JUL ? *)").unwrap();
        assert_eq!(
            y.next(at("2026-11-29T08:00:00Z")),
            Some(at("2027-01-01T10:30:00Z"))
        );
        // Sunday is 1.
        let sun = Schedule::parse("cron(0 0 ? * 1 *)").unwrap();
        assert_eq!(
            sun.next(at("2026-11-29T08:00:00Z")),
            Some(at("2026-12-06T00:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("cron(0 0 30 2 ? *)")
                .unwrap()
                .next(at("2026-01-01T00:00:00Z")),
            None
        );
        for bad in [
            "cron(0 12 * * * *)",
            "cron(0 12 ? * ? *)",
            "cron(0 12 L * ? *)",
            "cron(0 12 * * ?)",
            "cron(61 * * * ? *)",
            "cron(0 18 ? * MON#1 *)",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
