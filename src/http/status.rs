//! `GET /` (FR-17.4): the status page, server-rendered HTML without any
//! script: current health with its reasons, the next scheduled run, the
//! last runs, a size-over-time chart as inline SVG and the open incidents.
//!
//! The page shows no secret (nothing from the config but the storage
//! directory's name prefix) and links no archive: a download needs a
//! signed link, and the page does not mint any, so whoever can read the
//! page cannot download with it.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::state::AppState;
use crate::history::{History, Incident, RunStatus};
use crate::model::human_bytes;
use crate::monitor::checks::{self, Health};

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

#[derive(Debug, Serialize)]
struct Chart {
    width: u32,
    height: u32,
    points: String,
    dots: Vec<Dot>,
    max_label: String,
    first: String,
    last: String,
}

#[derive(Debug, Serialize)]
struct Page {
    health: Health,
    last_size: Option<String>,
    next_run: Option<String>,
    runs: Vec<Run>,
    chart: Option<Chart>,
    incidents: Vec<Incident>,
    generated_at: String,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD: f64 = 30.0;

/// The chart of `(time, size)` points, oldest first; `None` without any.
fn chart(points: &[(DateTime<Utc>, u64)]) -> Option<Chart> {
    let (first, last) = (points.first()?, points.last()?);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let n = points.len();
    let dots: Vec<Dot> = points
        .iter()
        .enumerate()
        .map(|(i, (t, size))| {
            let x = if n == 1 { W / 2.0 } else { PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64 };
            let y = H - PAD - (H - 2.0 * PAD) * (*size as f64 / max);
            Dot { x: x.round(), y: y.round(), title: format!("{}: {}", rfc(*t), human_bytes(*size)) }
        })
        .collect();
    let points = dots.iter().map(|d| format!("{},{}", d.x, d.y)).collect::<Vec<_>>().join(" ");
    Some(Chart {
        width: W as u32,
        height: H as u32,
        points,
        dots,
        max_label: human_bytes(max as u64),
        first: rfc(first.0),
        last: rfc(last.0),
    })
}

/// Everything the page shows but the next run (blocking: rusqlite).
fn collect(config: &crate::config::Config, now: DateTime<Utc>) -> crate::Result<Page> {
    let dir = &config.storage.dir;
    let health = checks::check(dir, &config.monitor, now)?;
    let mut page = Page {
        last_size: health.last_size_bytes.map(human_bytes),
        health,
        next_run: None,
        runs: Vec::new(),
        chart: None,
        incidents: Vec::new(),
        generated_at: rfc(now),
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
                started: rfc(r.started_at),
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
        page.chart = chart(&sizes);
        page.incidents = h.open_incidents()?;
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

fn next_run_text(next: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
    let t = next?;
    let mins = (t - now).num_minutes().max(0);
    Some(format!("{} (in {} h {} min)", rfc(t), mins / 60, mins % 60))
}

pub async fn get(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let next = *state.next_run.borrow();
    let config = state.config.clone();
    let page = super::blocking(move || collect(&config, now)).await;
    let html = page.and_then(|mut p| {
        p.next_run = next_run_text(next, now);
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
    fn the_chart_scales_sizes_to_the_largest_and_spreads_runs_evenly() {
        assert!(chart(&[]).is_none());
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        let day = chrono::Duration::days(1);
        let c = chart(&[(t0, 50), (t0 + day, 100), (t0 + day * 2, 0)]).unwrap();
        assert_eq!(c.points, "30,110 360,30 690,190");
        assert_eq!(c.dots[1].title, "2026-12-02T02:00:00Z: 100 B");
        assert_eq!((c.first.as_str(), c.last.as_str()), ("2026-12-01T02:00:00Z", "2026-12-03T02:00:00Z"));
        let one = chart(&[(t0, 7)]).unwrap();
        assert_eq!(one.dots[0].x, 360.0);
        assert_eq!(
            next_run_text(Some(t0 + chrono::Duration::minutes(125)), t0).unwrap(),
            "2026-12-01T04:05:00Z (in 2 h 5 min)"
        );
        assert!(next_run_text(None, t0).is_none());
    }
}
