//! report.html: the summary for a compliance officer. One self-contained file (inline CSS, SVG
//! charts drawn here, a few lines of script to open a table from a bar), readable offline.

use super::summary::{DIMENSIONS, Mix, Sample, Summary};
use std::collections::BTreeMap;
use std::fmt::Write;

const GREEN: &str = "#2e7d32";
const AMBER: &str = "#e0a000";
const RED: &str = "#c62828";
const GREY: &str = "#9e9e9e";
/// Most requesters shown in the chart (by number of orders); all are in summary.json.
const TOP_REQUESTERS: usize = 15;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// An id usable as a URL fragment.
fn anchor(dim: &str, key: &str) -> String {
    let mut a = format!("{dim}-");
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            a.push(c.to_ascii_lowercase());
        } else {
            a.push('_');
        }
    }
    a
}

fn segments(m: &Mix) -> [(u64, &'static str, &'static str); 4] {
    [
        (m.usually_appropriate, GREEN, "usually appropriate"),
        (m.may_be_appropriate, AMBER, "may be appropriate"),
        (m.usually_not_appropriate, RED, "usually not appropriate"),
        (m.not_rated, GREY, "not rated"),
    ]
}

fn legend() -> String {
    let mut s = String::from("<p class=\"legend\">");
    for (_, color, label) in segments(&Mix::default()) {
        let _ = write!(
            s,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(&capitalize(label))
        );
    }
    s.push_str("</p>");
    s
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Vertical stacked bars, one per month.
fn month_chart(by_month: &BTreeMap<String, Mix>) -> String {
    if by_month.is_empty() {
        return "<p>No dated orders of this guideline.</p>".into();
    }
    let max = by_month
        .values()
        .map(|m| m.orders)
        .max()
        .unwrap_or(1)
        .max(1);
    let bar_w = 28.0;
    let gap = 10.0;
    let h = 220.0;
    let left = 50.0;
    let width = left + by_month.len() as f64 * (bar_w + gap) + 10.0;
    let mut s = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"Rating mix by month\" width=\"100%\" style=\"max-width:{width}px\" viewBox=\"0 0 {width} {}\">",
        h + 60.0
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = 10.0 + h - h * frac;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{width}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"axis\">{}</text>",
            left - 6.0,
            y + 4.0,
            (max as f64 * frac).round() as u64
        );
    }
    for (i, (month, m)) in by_month.iter().enumerate() {
        let x = left + 5.0 + i as f64 * (bar_w + gap);
        let mut y = 10.0 + h;
        let _ = write!(
            s,
            "<a href=\"#{}\"><title>{}: {} orders, {} usually not appropriate ({})</title>",
            anchor("month", month),
            esc(month),
            m.orders,
            m.usually_not_appropriate,
            pct(m.usually_not_appropriate, m.orders)
        );
        for (n, color, _) in segments(m) {
            if n == 0 {
                continue;
            }
            let hh = h * n as f64 / max as f64;
            y -= hh;
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{bar_w}\" height=\"{hh:.1}\" fill=\"{color}\"/>"
            );
        }
        let _ = write!(
            s,
            "</a><text x=\"{}\" y=\"{}\" class=\"axis\" transform=\"rotate(-45 {} {})\" text-anchor=\"end\">{}</text>",
            x + bar_w / 2.0,
            h + 26.0,
            x + bar_w / 2.0,
            h + 26.0,
            esc(month)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal stacked bars, one per group, largest first.
fn bar_rows(dim: &str, groups: &[(&String, &Mix)]) -> String {
    if groups.is_empty() {
        return "<p>No orders.</p>".into();
    }
    let max = groups.iter().map(|g| g.1.orders).max().unwrap_or(1).max(1);
    let mut s = String::from("<table class=\"bars\"><tbody>");
    for (key, m) in groups {
        let _ = write!(
            s,
            "<tr><th scope=\"row\"><a href=\"#{}\">{}</a></th><td class=\"bar\"><a href=\"#{}\" title=\"{} orders\"><svg width=\"100%\" height=\"18\" viewBox=\"0 0 1000 18\" preserveAspectRatio=\"none\">",
            anchor(dim, key),
            esc(key),
            anchor(dim, key),
            m.orders
        );
        let mut x = 0.0;
        for (n, color, label) in segments(m) {
            if n == 0 {
                continue;
            }
            let w = 1000.0 * n as f64 / max as f64;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"18\" fill=\"{color}\"><title>{n} {label}</title></rect>"
            );
            x += w;
        }
        let _ = write!(
            s,
            "</svg></a></td><td class=\"num\">{}</td><td class=\"num bad\">{} not appropriate</td></tr>",
            m.orders,
            pct(m.usually_not_appropriate, m.orders)
        );
    }
    s.push_str("</tbody></table>");
    s
}

fn sorted_by_volume(map: &BTreeMap<String, Mix>) -> Vec<(&String, &Mix)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by(|a, b| b.1.orders.cmp(&a.1.orders).then_with(|| a.0.cmp(b.0)));
    v
}

fn sample_table(samples: &[&Sample]) -> String {
    let mut s = String::from(
        "<table class=\"orders\"><thead><tr><th>Order</th><th>Date</th><th>Requester</th><th>Patient</th><th>Procedure</th><th>Rating</th><th>Better alternative</th></tr></thead><tbody>",
    );
    for o in samples {
        let d = |v: &Option<String>| esc(v.as_deref().unwrap_or("–"));
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"pid\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&o.order),
            d(&o.date),
            d(&o.requester),
            esc(&o.patient),
            d(&o.procedure),
            esc(o.category.as_deref().unwrap_or("not rated")),
            d(&o.top_alternative),
        );
    }
    s.push_str("</tbody></table>");
    s
}

fn dim_title(dim: &str) -> &'static str {
    match dim {
        "month" => "Month",
        "procedure" => "Procedure",
        "requester" => "Requester",
        _ => "Clinical situation (ACR variant)",
    }
}

/// The whole report.
pub fn render(s: &Summary) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let not_app = s.mix.usually_not_appropriate;
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Order appropriateness audit – vertebral compression fracture</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:24px;color:#222;line-height:1.45}}
h1{{font-size:1.6em;margin-bottom:.2em}} h2{{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}}
.meta{{color:#555;font-size:.9em}}
.tiles{{display:flex;gap:12px;flex-wrap:wrap;margin:1em 0}}
.tile{{flex:1 1 150px;border:1px solid #ddd;border-radius:8px;padding:12px;background:#fafafa}}
.tile b{{display:block;font-size:1.8em}} .tile.bad b{{color:{RED}}}
.legend span{{margin-right:16px;white-space:nowrap}} .legend i{{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}}
.chart .axis{{font-size:11px;fill:#555}}
table{{border-collapse:collapse}} .bars{{width:100%}} .bars th{{text-align:left;font-weight:normal;width:32%;padding:3px 8px 3px 0}}
.bars td.bar{{width:50%}} .num{{text-align:right;padding-left:10px;white-space:nowrap}} .bad{{color:{RED}}}
.orders{{width:100%;font-size:.85em;margin:.5em 0 1em}} .orders th,.orders td{{border:1px solid #ddd;padding:3px 6px;text-align:left}}
.orders thead{{background:#f0f0f0}} .pid{{max-width:12em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}}
.alts td,.alts th{{border-bottom:1px solid #eee;padding:4px 10px 4px 0;text-align:left}}
details{{margin:.3em 0}} details:target,details[open]{{background:#fcfcfc}} summary{{cursor:pointer}}
.howto{{background:#f4f8fc;border:1px solid #cfe0f0;border-radius:8px;padding:4px 16px}}
</style></head><body>
<h1>Were the spine imaging and treatment orders appropriate?</h1>
<p class="meta">Orders for patients with a vertebral compression fracture on record, checked against the {guideline} (knowledge version {kv}), each as of the day it was written. Run {run} started {started}; {files} input file(s).</p>
<div class="tiles">
<div class="tile"><b>{checked}</b>orders checked</div>
<div class="tile bad"><b>{share}</b>usually not appropriate ({not_app} orders)</div>
<div class="tile"><b>{not_rated}</b>could not be rated (information missing)</div>
<div class="tile"><b>{undated}</b>orders without a date (not checked)</div>
<div class="tile"><b>{skipped}</b>input items skipped as unreadable</div>
</div>
<section class="howto"><h2 style="margin-top:.6em;border:0">How to read this</h2>
<ul>
<li>Each order was compared with the American College of Radiology <em>Appropriateness Criteria</em> for vertebral compression fractures, using only what the patient's record showed <strong>on the day the order was written</strong>. Diagnoses recorded or procedures done later do not count.</li>
<li>Colours: <span style="color:{GREEN}">green</span> = usually appropriate, <span style="color:{AMBER}">amber</span> = may be appropriate, <span style="color:{RED}">red</span> = usually not appropriate, <span style="color:{GREY}">grey</span> = not rated because the record did not show what the guideline needs to decide (for example whether the patient has cancer).</li>
<li>"Usually not appropriate" is the share to look at: the guideline's experts rated a different test or treatment higher for that situation. The "better alternative" is the highest-rated option the live service would have suggested.</li>
<li>Click a bar (or a name) to see example orders behind it. Every order, with the assumptions made, is in <code>orders.csv</code> next to this file; the figures are in <code>summary.json</code>.</li>
<li>The ratings are advice from a guideline, not a judgement of an individual clinician: a "not appropriate" order may have had reasons the coded record does not show.</li>
</ul></section>
"#,
        guideline = esc(&s.guideline_id),
        kv = esc(&s.knowledge_version),
        run = esc(&s.run_id),
        started = esc(&s.started_at),
        files = s.input_files,
        checked = s.orders_checked,
        share = pct(not_app, s.orders_checked),
        not_rated = s.mix.not_rated,
        undated = s.orders_without_date,
        skipped = s.skipped,
    );

    h.push_str("<h2>Rating mix by month</h2>");
    h.push_str(&legend());
    h.push_str(&month_chart(&s.by_month));

    h.push_str("<h2>By procedure</h2>");
    h.push_str(&legend());
    h.push_str(&bar_rows("procedure", &sorted_by_volume(&s.by_procedure)));

    let requesters = sorted_by_volume(&s.by_requester);
    let _ = write!(
        h,
        "<h2>By requester</h2><p class=\"meta\">The {} requesters with the most orders (of {}); all are in summary.json.</p>",
        requesters.len().min(TOP_REQUESTERS),
        requesters.len()
    );
    h.push_str(&legend());
    h.push_str(&bar_rows(
        "requester",
        &requesters[..requesters.len().min(TOP_REQUESTERS)],
    ));

    h.push_str("<h2>By clinical situation</h2><p class=\"meta\">The ACR variant the engine matched the patient to on the order date.</p>");
    h.push_str(&legend());
    h.push_str(&bar_rows("variant", &sorted_by_volume(&s.by_variant)));

    h.push_str("<h2>Most common “usually not appropriate” orders and the better alternative</h2>");
    if s.top_alternatives.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table class=\"alts\"><thead><tr><th>Ordered</th><th>Better alternative (highest rated)</th><th class=\"num\">Orders</th></tr></thead><tbody>");
        for a in &s.top_alternatives {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&a.procedure),
                esc(&a.alternative),
                a.orders
            );
        }
        h.push_str("</tbody></table>");
    }

    h.push_str("<h2>Orders behind each bar</h2><p class=\"meta\">Up to 10 “usually not appropriate” and 5 other orders per bar; the full list is orders.csv.</p>");
    for dim in DIMENSIONS {
        let map = match dim {
            "month" => &s.by_month,
            "procedure" => &s.by_procedure,
            "requester" => &s.by_requester,
            _ => &s.by_variant,
        };
        let mut groups = sorted_by_volume(map);
        if dim == "month" {
            groups.sort_by(|a, b| a.0.cmp(b.0));
        }
        if dim == "requester" {
            groups.truncate(TOP_REQUESTERS);
        }
        let _ = write!(h, "<h3>{}</h3>", dim_title(dim));
        for (key, m) in groups {
            let samples: Vec<&Sample> = s
                .samples
                .get(&(dim, key.clone()))
                .map(|(bad, other)| bad.iter().chain(other.iter()).collect())
                .unwrap_or_default();
            let _ = write!(
                h,
                "<details id=\"{}\"><summary>{} — {} orders, {} usually not appropriate</summary>{}</details>",
                anchor(dim, key),
                esc(key),
                m.orders,
                m.usually_not_appropriate,
                sample_table(&samples)
            );
        }
    }

    h.push_str("<h2>Data quality</h2><ul>");
    let _ = write!(
        h,
        "<li>{} orders read. Not counted above: {} are for procedures this guideline does not cover, {} were for patients with no vertebral compression fracture on record on the order date, {} had no date and {} were entered in error.</li>",
        s.orders_read,
        s.orders_not_covered,
        s.orders_without_fracture,
        s.orders_without_date,
        s.orders_entered_in_error
    );
    let _ = write!(
        h,
        "<li>{} patients, {} clinical records used; {} records carry no date and were taken as known before every order.</li>",
        s.patients, s.resources, s.resources_undated
    );
    let _ = write!(
        h,
        "<li>{} input lines or resources could not be read and were skipped (listed in skipped.csv).</li>",
        s.skipped
    );
    h.push_str("</ul>");
    if !s.skipped_examples.is_empty() {
        h.push_str("<table class=\"orders\"><thead><tr><th>File</th><th>Where</th><th>Problem</th></tr></thead><tbody>");
        for p in &s.skipped_examples {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.file),
                esc(&p.position),
                esc(&p.message)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str(
        "<script>function openTarget(){var e=location.hash&&document.getElementById(decodeURIComponent(location.hash.slice(1)));if(e&&e.tagName==='DETAILS'){e.open=true;}}window.addEventListener('hashchange',openTarget);openTarget();</script>",
    );
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_anchors_are_safe() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            anchor("requester", "Practitioner/Dr <X>"),
            "requester-practitioner_dr__x_"
        );
    }
}
