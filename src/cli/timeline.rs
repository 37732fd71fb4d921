//! `certroll timeline`: for each slot, its previous, current and pending
//! certificates' validity as bars on one date axis, with today and the
//! effective instant marked, so an operator sees at a glance what becomes
//! current when and what expires first.
//!
//! [`render`] is pure (the slots, `now` and the style are parameters); the
//! command reads the store and the terminal.

use std::io::IsTerminal;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use clap::{Args, ValueEnum};

use super::{App, UsageError};
use crate::cert::ScopePattern;
use crate::cert::expiry::{CertFacts, SlotFacts};
use crate::cert::renewal::Timing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is unset
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each bar is a certificate's validity: = valid, ~ within [check] warning_days of its \
expiry, ! within critical_days, . a pending certificate before its instant, * the instant it becomes \
current, | today, < and > validity beyond the window. Expiry warnings are coloured on a terminal."
)]
pub struct TimelineArgs {
    /// Only these usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Only this scope: global, site:NAME, pool:FQDN or server:FQDN; '*' matches any
    /// text (pool:*)
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,

    /// Only the slots with a problem (what `check` reports as WARNING or CRITICAL)
    #[arg(long)]
    pub problems: bool,

    /// Only the slots whose current or pending certificate expires within DAYS
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36500))]
    pub expiring_within: Option<u32>,

    /// Days ahead to show (the window also shows a sixth of that before today, and grows to
    /// show the next pending instant)
    #[arg(long, value_name = "N", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,

    /// Draw the timeline as of this instant instead of now (same forms as --effective-date,
    /// or -30d)
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub at: Option<String>,

    /// Columns of the bars [default: to fit the terminal, else 60]
    #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(20..=400))]
    pub width: Option<u16>,

    /// Colour the expiry warnings
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// How to draw.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    pub warning_days: u32,
    pub critical_days: u32,
    pub tz: Tz,
    /// The marked instant is another than now (`--at`): the axis says "at".
    pub as_of: bool,
}

/// The columns of the terminal on stdout (COLUMNS, else the tty's size).
fn terminal_columns() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(n);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass; nothing else.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// The bars' width for a terminal of `columns`: what the labels leave.
fn bars_for(columns: usize) -> usize {
    columns.saturating_sub(INDENT + 90).clamp(20, 400)
}

pub fn run(app: &App, args: TimelineArgs) -> Result<()> {
    let types = match &args.types {
        Some(t) => app.parse_types(t)?,
        None => Vec::new(),
    };
    let scope = args.scope.as_deref().map(ScopePattern::parse).transpose()?;
    let now = match &args.at {
        Some(at) => crate::schedule::when::parse_instant(at, app.config.timezone, app.now())
            .map_err(|e| UsageError(format!("--at: {e}")))?,
        None => app.now(),
    };
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let store = app.open_store_read_only()?;
    let mut slots: Vec<SlotFacts> = store
        .slot_facts()?
        .into_iter()
        .filter(|s| types.is_empty() || types.contains(&s.slot.usage_type))
        .filter(|s| scope.as_ref().is_none_or(|p| p.matches(&s.slot.scope)))
        .collect();
    if let Some(days) = args.expiring_within {
        let until = crate::schedule::when::days_after(now, days.into())
            .ok_or_else(|| UsageError(format!("--expiring-within {days}: beyond the year 9999")))?;
        slots.retain(|s| {
            s.current
                .iter()
                .chain(s.pending.iter().map(|(c, _)| c))
                .any(|c| c.not_after <= until)
        });
    }
    if args.problems {
        let overdue = Duration::seconds(app.config.serve.late_after_seconds.into());
        let health = crate::cert::expiry::health(
            &slots,
            &|s| app.config.expiry_rules(s),
            app.config.check.warning_days,
            app.config.check.critical_days,
            overdue,
            now,
        );
        let bad: Vec<_> = health
            .iter()
            .filter(|h| h.health != crate::cert::expiry::Health::Ok)
            .map(|h| h.slot.clone())
            .collect();
        slots.retain(|s| bad.contains(&s.slot));
    }
    if slots.is_empty() && (args.problems || args.expiring_within.is_some()) {
        say!("no slot matches");
        return Ok(());
    }
    // The window grows to show the next pending instant.
    let mut days = args.days;
    if let Some(next) = slots
        .iter()
        .filter_map(|s| s.pending.as_ref().map(|(_, at)| *at))
        .filter(|at| *at > now)
        .min()
        && next >= now + Duration::days(days.into())
    {
        let need = (next - now).num_days() + 1;
        days = u32::try_from(need + need / 10)
            .unwrap_or(36_500)
            .min(36_500);
    }
    let width = args
        .width
        .map(usize::from)
        .or_else(|| terminal_columns().map(bars_for))
        .unwrap_or(60);
    let style = Style {
        color,
        warning_days: app.config.check.warning_days,
        critical_days: app.config.check.critical_days,
        tz: app.config.timezone,
        as_of: args.at.is_some(),
    };
    let renewals: Renewals = crate::ops::renew::survey(&store, &app.config, now, &types, None)?
        .into_iter()
        .filter_map(|c| Some((c.slot, (c.plan.timing?, c.policy.method.as_str()))))
        .collect();
    print!("{}", render(&slots, &renewals, now, days, width, &style));
    Ok(())
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Where the bars start: the width of a row's role column.
const INDENT: usize = 12;

/// The window and its columns.
struct Axis {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    width: usize,
}

impl Axis {
    /// The column of `t`, if it is inside the window.
    fn col(&self, t: DateTime<Utc>) -> Option<usize> {
        if t < self.start || t >= self.end {
            return None;
        }
        let total = (self.end - self.start).num_milliseconds() as f64;
        let off = (t - self.start).num_milliseconds() as f64;
        Some(((off / total) * self.width as f64).floor() as usize).map(|c| c.min(self.width - 1))
    }

    /// The middle instant of column `c`.
    fn mid(&self, c: usize) -> DateTime<Utc> {
        let total = (self.end - self.start).num_milliseconds() as f64;
        self.start + Duration::milliseconds(((c as f64 + 0.5) / self.width as f64 * total) as i64)
    }
}

/// Renders every slot's timeline as of `now`.
/// A slot's next renewal under its rollover policy (made, promoted) and
/// the policy's method.
pub type Renewals = std::collections::HashMap<crate::cert::SlotKey, (Timing, &'static str)>;

pub fn render(
    slots: &[SlotFacts],
    renewals: &Renewals,
    now: DateTime<Utc>,
    days: u32,
    width: usize,
    style: &Style,
) -> String {
    if slots.is_empty() {
        return "no certificate assigned\n".into();
    }
    let axis = Axis {
        start: now - Duration::days((i64::from(days) / 6).max(1)),
        end: now + Duration::days(days.into()),
        width,
    };
    let today = axis.col(now).unwrap_or(0);
    let date = |t: DateTime<Utc>| t.with_timezone(&style.tz).format("%Y-%m-%d").to_string();
    let mut out = String::new();
    // The axis: the window's first and last day above its ends, and today
    // (or the --at instant) marked with a v, its date beside it.
    let (first, last) = (date(axis.start), date(axis.end - Duration::seconds(1)));
    let gap = width.saturating_sub(first.len() + last.len()).max(1);
    out.push_str(&format!("{:INDENT$}{first}{:gap$}{last}\n", "", ""));
    let mut ticks = vec![' '; width];
    ticks[0] = '|';
    ticks[width - 1] = '|';
    let label = if style.as_of {
        format!("at {}", date(now))
    } else {
        format!("today {}", date(now))
    };
    if today + 2 + label.len() < width - 1 {
        ticks.splice(today + 2..today + 2 + label.len(), label.chars());
    } else if today > label.len() + 2 {
        ticks.splice(today - 1 - label.len()..today - 1, label.chars());
    }
    ticks[today] = 'v';
    let ticks: String = ticks.into_iter().collect();
    out.push_str(&format!("{:INDENT$}{ticks}\n", ""));

    for s in slots {
        out.push('\n');
        let head = format!("{}", s.slot);
        if style.color {
            out.push_str(&format!("{BOLD}{head}{RESET}\n"));
        } else {
            out.push_str(&format!("{head}\n"));
        }
        if let Some((c, since)) = &s.previous {
            let note = format!(
                "previous since {}; expires {}",
                date(*since),
                date(c.not_after)
            );
            out.push_str(&row("previous", c, None, &note, &axis, today, now, style));
        }
        if let Some(c) = &s.current {
            let days_left = (c.not_after - now).num_days();
            let note = if c.not_after <= now {
                format!("EXPIRED {}", date(c.not_after))
            } else {
                format!(
                    "expires {} (in {days_left} days){}",
                    date(c.not_after),
                    level_word(days_left, style)
                )
            };
            out.push_str(&row("current", c, None, &note, &axis, today, now, style));
        }
        if let Some((c, at)) = &s.pending {
            let local = at.with_timezone(&style.tz);
            let note = format!(
                "current from {} (in {} days); expires {}",
                local.format("%Y-%m-%d %H:%M:%S %Z"),
                (*at - now).num_days(),
                date(c.not_after)
            );
            out.push_str(&row(
                "pending",
                c,
                Some(*at),
                &note,
                &axis,
                today,
                now,
                style,
            ));
        } else if let Some((t, method)) = renewals.get(&s.slot) {
            out.push_str(&renewal_row(t, method, &axis, today, style));
        }
    }
    out
}

/// The next renewal of a slot with nothing pending: `+` where its policy
/// makes the next certificate, `*` where it becomes current.
fn renewal_row(t: &Timing, method: &str, axis: &Axis, today: usize, style: &Style) -> String {
    let mut cells = vec![' '; axis.width];
    cells[today] = '|';
    if let Some(i) = axis.col(t.generate_at) {
        cells[i] = '+';
    }
    if let Some(i) = axis.col(t.promote_at) {
        cells[i] = '*';
    }
    let bar: String = cells.into_iter().collect();
    let date = |d: DateTime<Utc>| d.with_timezone(&style.tz).format("%Y-%m-%d").to_string();
    format!(
        "  {:<8}  {bar}  {method}: next made {}, current from {}\n",
        "renewal",
        date(t.generate_at),
        date(t.promote_at)
    )
}

fn level_word(days_left: i64, style: &Style) -> &'static str {
    if days_left <= i64::from(style.critical_days) {
        " CRITICAL"
    } else if days_left <= i64::from(style.warning_days) {
        " WARNING"
    } else {
        ""
    }
}

/// One certificate's bar and its description.
#[allow(clippy::too_many_arguments)]
fn row(
    role: &str,
    c: &CertFacts,
    effective: Option<DateTime<Utc>>,
    note: &str,
    axis: &Axis,
    today: usize,
    now: DateTime<Utc>,
    style: &Style,
) -> String {
    let width = axis.width;
    let instant = effective.and_then(|t| axis.col(t));
    let mut cells: Vec<(char, Option<&str>)> = Vec::with_capacity(width);
    for col in 0..width {
        let t = axis.mid(col);
        let cell = if t < c.not_before || t >= c.not_after {
            (' ', None)
        } else if effective.is_some_and(|e| t < e) {
            ('.', None)
        } else {
            let left = (c.not_after - t).num_days();
            if left < i64::from(style.critical_days) {
                ('!', Some(RED))
            } else if left < i64::from(style.warning_days) {
                ('~', Some(YELLOW))
            } else {
                ('=', None)
            }
        };
        cells.push(cell);
    }
    if cells[0].0 != ' ' && c.not_before < axis.start {
        cells[0].0 = '<';
    }
    if cells[width - 1].0 != ' ' && c.not_after > axis.end {
        cells[width - 1].0 = '>';
    }
    if let Some(i) = instant {
        cells[i] = ('*', Some(CYAN));
    }
    if cells[today].0 == ' ' || instant != Some(today) {
        cells[today] = ('|', Some(BOLD));
    }
    let mut bar = String::new();
    for (ch, colour) in cells {
        match colour {
            Some(code) if style.color => bar.push_str(&format!("{code}{ch}{RESET}")),
            _ => bar.push(ch),
        }
    }
    let days_left = (c.not_after - now).num_days();
    let note = if style.color && days_left <= i64::from(style.warning_days) {
        let code = if days_left <= i64::from(style.critical_days) {
            RED
        } else {
            YELLOW
        };
        format!("{code}{note}{RESET}")
    } else {
        note.to_string()
    };
    format!(
        "  {role:<8}  {bar}  {}  {}  {note}\n",
        &c.thumbprint[..8],
        crate::text::escape(&c.label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{Scope, SlotKey, UsageType};
    use chrono::TimeZone;

    fn cert(id: i64, label: &str, from: DateTime<Utc>, until: DateTime<Utc>) -> CertFacts {
        CertFacts {
            id,
            thumbprint: format!("{:X}", 0xA1B2C3D4u32 + id as u32).repeat(5),
            label: label.into(),
            not_before: from,
            not_after: until,
        }
    }

    fn d(y: i32, m: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, 0, 0, 0).unwrap()
    }

    /// Two slots at a fixed instant: a token issuer rolling in 20 days
    /// whose current certificate expires in 25, and a web slot whose only
    /// certificate expires in 5 with nothing pending.
    fn slots() -> Vec<SlotFacts> {
        vec![
            SlotFacts {
                slot: SlotKey::new(Scope::Global, UsageType::from_canonical("OAuthTokenIssuer")),
                previous: Some((
                    cert(1, "oauth2025.contoso.com", d(2025, 1, 1), d(2027, 3, 1)),
                    d(2026, 6, 1),
                )),
                current: Some(cert(
                    2,
                    "oauth2026.contoso.com",
                    d(2026, 1, 1),
                    d(2027, 1, 20),
                )),
                pending: Some((
                    cert(3, "oauth2027.contoso.com", d(2026, 12, 1), d(2028, 1, 1)),
                    Utc.with_ymd_and_hms(2027, 1, 15, 2, 30, 0).unwrap(),
                )),
                failed_roll: None,
            },
            SlotFacts {
                slot: SlotKey::new(
                    Scope::Pool("pool01.contoso.com".into()),
                    UsageType::from_canonical("WebServicesExternal"),
                ),
                previous: None,
                current: Some(cert(4, "web.contoso.com", d(2026, 3, 1), d(2026, 12, 31))),
                pending: None,
                failed_roll: None,
            },
        ]
    }

    fn style(color: bool) -> Style {
        Style {
            color,
            warning_days: 30,
            critical_days: 7,
            tz: "Europe/London".parse().unwrap(),
            as_of: false,
        }
    }

    #[test]
    fn matches_the_checked_in_timeline() {
        let now = Utc.with_ymd_and_hms(2026, 12, 26, 9, 0, 0).unwrap();
        let text = render(&slots(), &Renewals::new(), now, 60, 60, &style(false));
        let expected = include_str!("../../tests/data/timeline/two-slots.txt");
        assert_eq!(text, expected, "\n{text}");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colours_warnings_only_when_asked() {
        let now = Utc.with_ymd_and_hms(2026, 12, 26, 9, 0, 0).unwrap();
        let text = render(&slots(), &Renewals::new(), now, 60, 60, &style(true));
        assert!(text.contains(&format!("{RED}!{RESET}")));
        assert!(text.contains(&format!("{YELLOW}~{RESET}")));
        assert!(text.contains(&format!("{CYAN}*{RESET}")));
        // Stripped of its colours it is the plain rendering.
        let mut plain = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find('\x1b') {
            plain.push_str(&rest[..i]);
            rest = &rest[i + rest[i..].find('m').unwrap() + 1..];
        }
        plain.push_str(rest);
        assert_eq!(
            plain,
            render(&slots(), &Renewals::new(), now, 60, 60, &style(false))
        );
    }

    #[test]
    fn marks_today_and_the_instant_in_their_columns() {
        let now = Utc.with_ymd_and_hms(2026, 12, 26, 9, 0, 0).unwrap();
        let text = render(&slots(), &Renewals::new(), now, 60, 60, &style(false));
        let bars: Vec<&str> = text
            .lines()
            .filter(|l| {
                ["previous", "current", "pending"]
                    .iter()
                    .any(|r| l.trim_start().starts_with(r))
            })
            .collect();
        assert_eq!(bars.len(), 4);
        let today = text.lines().nth(1).unwrap().find('v').unwrap();
        for b in &bars {
            assert_eq!(b.as_bytes()[today], b'|', "{b}");
        }
        let pending = bars
            .iter()
            .find(|b| b.trim_start().starts_with("pending"))
            .unwrap();
        let star = pending.find('*').unwrap();
        // 2027-01-15 02:30 is 19.7 days after now in a 70-day window.
        let axis_start = 12;
        let expected = axis_start + ((10.0 + 19.729) / 70.0 * 60.0) as usize;
        assert_eq!(star, expected, "{pending}");
        assert!(
            pending[..star].ends_with('.') && pending[star + 1..].starts_with('='),
            "{pending}"
        );
    }

    #[test]
    fn nothing_assigned_says_so() {
        assert_eq!(
            render(&[], &Renewals::new(), Utc::now(), 90, 60, &style(false)),
            "no certificate assigned\n"
        );
    }

    #[test]
    fn a_slot_with_nothing_pending_shows_its_next_renewal() {
        let now = d(2027, 1, 1);
        let mut all = slots();
        for s in &mut all {
            s.pending = None;
        }
        let t = Timing {
            generate_at: d(2027, 1, 20),
            promote_at: d(2027, 2, 4),
            critical_at: d(2027, 2, 7),
        };
        let renewals: Renewals = all
            .iter()
            .map(|s| (s.slot.clone(), (t, "self-signed")))
            .collect();
        let text = render(&all, &renewals, now, 60, 60, &style(false));
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("renewal"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains("self-signed: next made 2027-01-20, current from 2027-02-04"),
            "{line}"
        );
        let bar = &line[INDENT..INDENT + 60];
        assert!(bar.find('+').unwrap() < bar.find('*').unwrap(), "{bar}");
    }
}
