//! `GET /` (FR-17.4): the status page, server-rendered HTML without any
//! script: which database and host it is about, current health with its
//! reasons, whether alerts reach anyone (the channels configured, and a
//! warning when there is none or mail is the only one and failing), the
//! next scheduled run, the last runs, a size-over-time chart as inline SVG
//! (from zero, with labelled axes) and the open incidents. Times are in
//! `[schedule] timezone`, with their offset.
//!
//! The page shows no secret (the database's name, host and port, never
//! its password or role; the alert channels' names, never their URLs) and
//! links no archive: a download needs a signed link, and the page does not
//! mint any, so whoever can read the page cannot download with it.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::state::AppState;
use crate::history::{History, RunStatus};
use crate::model::human_bytes;
use crate::monitor::channels;
use crate::monitor::checks::{self, Health, Kind};

const TEMPLATE: &str = include_str!("templates/status.html.j2");
/// How many runs the table shows, and how many successes the chart plots.
pub const RUNS_SHOWN: usize = 20;
pub const CHART_POINTS: usize = 30;

#[derive(Debug, Serialize)]
struct Run {
    archive: String,
    status: String,
    started: String,
    size: String,
    duration: String,
    delivery: String,
    rehearsal: String,
    detail: String,
}

#[derive(Debug, Serialize, PartialEq)]
struct Dot {
    x: f64,
    y: f64,
    title: String,
}

/// A labelled tick of an axis.
#[derive(Debug, Serialize, PartialEq)]
struct Tick {
    at: f64,
    label: String,
}

#[derive(Debug, Serialize)]
struct Chart {
    width: u32,
    height: u32,
    /// The plot area: left, top, right, bottom.
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    points: String,
    dots: Vec<Dot>,
    /// Sizes, from 0 at the bottom to a round number at the top.
    y_ticks: Vec<Tick>,
    /// Dates: the first and last run (and the middle one when they differ).
    x_ticks: Vec<Tick>,
    x_title: String,
}

#[derive(Debug, Serialize)]
struct OpenIncident {
    kind: String,
    opened_at: String,
    detail: String,
}

/// What the page is about: the database, its server, this host.
#[derive(Debug, Serialize)]
struct About {
    database: String,
    server: String,
    host: String,
    timezone: String,
}

#[derive(Debug, Serialize)]
struct Page {
    about: About,
    health: Health,
    last_success: Option<String>,
    last_size: Option<String>,
    next_run: Option<String>,
    runs: Vec<Run>,
    chart: Option<Chart>,
    incidents: Vec<OpenIncident>,
    /// The alert channels configured, by name.
    channels: Vec<&'static str>,
    /// Why alerts would reach nobody, when they would.
    unheard: Option<String>,
    generated_at: String,
}

/// `t` in the page's time zone, with its offset: `2026-12-01 09:00:00 +07:00`.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// The zone's offset now: `+07:00`.
fn offset(tz: Tz) -> String {
    Utc::now().with_timezone(&tz).format("%:z").to_string()
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

const W: f64 = 760.0;
const H: f64 = 260.0;
/// Room for the size labels on the left and the dates below.
const LEFT: f64 = 86.0;
const TOP: f64 = 16.0;
const RIGHT: f64 = 24.0;
const BOTTOM: f64 = 52.0;

/// The smallest 1, 2, 2.5 or 5 × 10^n at or above `v` (at least 1).
fn round_up(v: f64) -> f64 {
    let v = v.max(1.0);
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * p).find(|x| *x >= v).unwrap_or(10.0 * p)
}

/// The chart of `(time, size)` points, oldest first; `None` without any.
/// Sizes are drawn from zero; runs by their time between the first and
/// the last.
fn chart(points: &[(DateTime<Utc>, u64)], tz: Tz) -> Option<Chart> {
    let (first, last) = (points.first()?, points.last()?);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let step = round_up(points.iter().map(|p| p.1).max().unwrap_or(0) as f64 / 4.0);
    let top = 4.0 * step;
    let span = (last.0 - first.0).num_seconds() as f64;
    let x_of = |t: DateTime<Utc>| {
        if span <= 0.0 {
            (x0 + x1) / 2.0
        } else {
            x0 + (x1 - x0) * (t - first.0).num_seconds() as f64 / span
        }
    };
    let dots: Vec<Dot> = points
        .iter()
        .map(|(t, size)| Dot {
            x: x_of(*t).round(),
            y: (y0 - (y0 - y1) * (*size as f64 / top)).round(),
            title: format!("{}: {}", local(*t, tz), human_bytes(*size)),
        })
        .collect();
    let points_attr = dots.iter().map(|d| format!("{},{}", d.x, d.y)).collect::<Vec<_>>().join(" ");
    let y_ticks = (0..=4)
        .map(|i| Tick {
            at: (y0 - (y0 - y1) * f64::from(i) / 4.0).round(),
            label: if i == 0 { "0".into() } else { human_bytes((step * f64::from(i)) as u64) },
        })
        .collect();
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d").to_string();
    let mut x_ticks = vec![Tick { at: x_of(first.0).round(), label: day(first.0) }];
    if span > 0.0 {
        let middle = first.0 + chrono::Duration::seconds((span / 2.0) as i64);
        for t in [middle, last.0] {
            if x_ticks.last().is_some_and(|l| l.label != day(t)) {
                x_ticks.push(Tick { at: x_of(t).round(), label: day(t) });
            }
        }
    }
    Some(Chart {
        width: W as u32,
        height: H as u32,
        left: x0,
        top: y1,
        right: x1,
        bottom: y0,
        points: points_attr,
        dots,
        y_ticks,
        x_ticks,
        x_title: format!("run finished ({}, UTC{})", tz.name(), offset(tz)),
    })
}

/// The page's time zone: `[schedule] timezone` (checked when the config loaded).
fn zone(config: &crate::config::Config) -> Tz {
    config.schedule.zone()
}

/// Everything the page shows but the next run (blocking: rusqlite).
fn collect(config: &crate::config::Config, now: DateTime<Utc>) -> crate::Result<Page> {
    let dir = &config.storage.dir;
    let tz = zone(config);
    let health = checks::check(dir, &config.monitor, now)?;
    let mail_failing = health.problems.iter().any(|p| p.kind == Kind::DeliveryFailed);
    let db = &config.database;
    let mut page = Page {
        about: About {
            database: db.name.clone(),
            server: format!("{}:{}", db.host, db.port),
            host: crate::deliver::host_name(),
            timezone: format!("{} (UTC{})", tz.name(), offset(tz)),
        },
        last_success: health.last_success.map(|t| local(t, tz)),
        last_size: health.last_size_bytes.map(human_bytes),
        health,
        next_run: None,
        runs: Vec::new(),
        chart: None,
        incidents: Vec::new(),
        channels: channels::configured(config),
        unheard: channels::unheard(config, mail_failing),
        generated_at: local(now, tz),
    };
    if let Some(h) = History::open_existing(dir)? {
        page.runs = h
            .recent(RUNS_SHOWN)?
            .into_iter()
            .map(|r| Run {
                archive: r.archive.clone().unwrap_or_else(|| "-".into()),
                detail: if matches!(r.status, RunStatus::Success | RunStatus::Running) {
                    String::new()
                } else {
                    r.summary()
                },
                status: r.status.to_string(),
                started: local(r.started_at, tz),
                size: r.size_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                duration: r.duration_ms.map(seconds).unwrap_or_else(|| "-".into()),
                delivery: r.delivery_status.map_or_else(|| "-".into(), |s| s.to_string()),
                rehearsal: r.restore_test_status.map_or_else(|| "-".into(), |s| s.to_string()),
            })
            .collect();
        let mut sizes: Vec<(DateTime<Utc>, u64)> = h
            .successes(CHART_POINTS)?
            .into_iter()
            .filter_map(|r| Some((r.finished_at.unwrap_or(r.started_at), r.size_bytes?)))
            .collect();
        sizes.reverse();
        page.chart = chart(&sizes, tz);
        page.incidents = h
            .open_incidents()?
            .into_iter()
            .map(|i| OpenIncident {
                kind: i.kind,
                opened_at: local(i.opened_at, tz),
                detail: i.detail.unwrap_or_default(),
            })
            .collect();
    }
    Ok(page)
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template("status.html.j2", TEMPLATE).expect("the built-in status template compiles");
        env
    })
}

fn render(page: &Page) -> Result<String, minijinja::Error> {
    env().get_template("status.html.j2")?.render(page)
}

fn next_run_text(next: Option<DateTime<Utc>>, now: DateTime<Utc>, tz: Tz) -> Option<String> {
    let t = next?;
    let mins = (t - now).num_minutes().max(0);
    Some(format!("{} (in {} h {} min)", local(t, tz), mins / 60, mins % 60))
}

pub async fn get(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let next = *state.next_run.borrow();
    let config = state.config.clone();
    let tz = zone(&config);
    let page = super::blocking(move || collect(&config, now)).await;
    let html = page.and_then(|mut p| {
        p.next_run = next_run_text(next, now, tz);
        render(&p).map_err(|e| crate::Error::Failed(format!("cannot render the status page: {e:#}")))
    });
    match html {
        Ok(html) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
            html,
        )
            .into_response(),
        Err(e) => super::internal_error("the status page", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-17.4
    #[test]
    fn the_chart_starts_at_zero_with_round_labelled_sizes_and_dates_in_the_zone() {
        let bangkok: Tz = "Asia/Bangkok".parse().unwrap();
        assert!(chart(&[], bangkok).is_none());
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T20:00:00Z").unwrap().to_utc();
        let day = chrono::Duration::days(1);
        let c = chart(&[(t0, 300_000), (t0 + day, 900_000), (t0 + day * 2, 0)], bangkok).unwrap();
        // 900,000 / 4 rounds up to 250,000 a step: the top is 1,000,000.
        assert_eq!(c.y_ticks.iter().map(|t| t.at).collect::<Vec<_>>(), [208.0, 160.0, 112.0, 64.0, 16.0]);
        assert_eq!(c.y_ticks[0].label, "0");
        assert_eq!(c.y_ticks[4].label, human_bytes(1_000_000));
        assert_eq!(c.points, "86,150 411,35 736,208", "a size of 0 sits on the zero line");
        assert_eq!(c.dots[1].title, format!("2026-12-03 03:00:00 +07:00: {}", human_bytes(900_000)));
        // Dates are Bangkok's: 20:00 UTC is the next day there.
        assert_eq!(
            c.x_ticks.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
            ["2026-12-02", "2026-12-03", "2026-12-04"]
        );
        assert_eq!(c.x_title, "run finished (Asia/Bangkok, UTC+07:00)");
        let one = chart(&[(t0, 7)], bangkok).unwrap();
        assert_eq!((one.dots[0].x, one.x_ticks.len()), (411.0, 1));
        assert_eq!((round_up(0.0), round_up(3.0), round_up(2.2), round_up(60.0)), (1.0, 5.0, 2.5, 100.0));
        assert_eq!(
            next_run_text(Some(t0 + chrono::Duration::minutes(125)), t0, bangkok).unwrap(),
            "2026-12-02 05:05:00 +07:00 (in 2 h 5 min)"
        );
        assert!(next_run_text(None, t0, Tz::UTC).is_none());
    }
}
