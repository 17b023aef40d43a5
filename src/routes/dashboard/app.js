// vcf-cds compliance dashboard: plain JS, charts drawn as inline SVG, data from /audit/api/*
// with the admin token kept in sessionStorage. Text from the data is only ever set with
// textContent / attributes, never parsed as HTML.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var TOKEN_KEY = "vcf-cds-admin-token";
  var FILTERS = ["from", "to", "service", "variant", "procedure", "category", "outcome", "feedback", "user", "rating", "pama", "hook", "hook_instance", "card", "call", "delivery", "source"];
  var PAGE = 25;
  var state = { offset: 0, total: 0 };
  var CAT = {
    "usually-appropriate": ["ok", "Usually appropriate"],
    "may-be-appropriate": ["maybe", "May be appropriate"],
    "may-be-appropriate-disagreement": ["maybe", "May be appropriate (disagreement)"],
    "usually-not-appropriate": ["bad", "Usually not appropriate"]
  };

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function pct(x) { return (Math.round(x * 1000) / 10).toFixed(1) + " %"; }
  function fmtInt(n) { return Number(n || 0).toLocaleString("en-US"); }
  function shortId(s) {
    if (!s) return "–";
    return /^[0-9a-f]{64}$/.test(s) ? s.slice(0, 10) + "…" : s;
  }
  function day(ms) { return new Date(ms).toISOString().slice(0, 10); }

  // ---- token -------------------------------------------------------------------------------
  function takeTokenFromFragment() {
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash || "");
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function api(path) {
    return fetch(path, { headers: { "Authorization": "Bearer " + token(), "Accept": "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { sessionStorage.removeItem(TOKEN_KEY); throw new Error("unauthorized"); }
        if (!r.ok) {
          return r.json().then(function (o) {
            var d = o && o.issue && o.issue[0] && o.issue[0].diagnostics;
            throw new Error(d || ("HTTP " + r.status));
          }, function () { throw new Error("HTTP " + r.status); });
        }
        return r;
      });
  }

  // ---- filters ------------------------------------------------------------------------------
  function currentParams() {
    var p = new URLSearchParams(location.search);
    var out = new URLSearchParams();
    FILTERS.forEach(function (k) { var v = p.get(k); if (v) out.set(k, v); });
    return out;
  }
  function setParams(p) {
    history.pushState(null, "", location.pathname + (p.toString() ? "?" + p.toString() : ""));
    state.offset = 0;
    load();
  }
  function drill(key, value) {
    var p = currentParams();
    if (value === null || value === undefined || value === "") p.delete(key); else p.set(key, value);
    setParams(p);
  }
  function fillForm(p) {
    var f = $("filters");
    FILTERS.forEach(function (k) {
      var input = f.elements[k];
      if (!input) return;
      var v = p.get(k) || "";
      if ((k === "from" || k === "to") && v) v = v.slice(0, 10);
      if (input.tagName === "SELECT" && v && !Array.prototype.some.call(input.options, function (o) { return o.value === v; })) {
        input.appendChild(el("option", { value: v }, v));
      }
      input.value = v;
    });
    var chips = $("active-filters");
    clear(chips);
    p.forEach(function (v, k) { chips.appendChild(el("span", { "class": "chip", "data-filter": k }, k + ": " + shortId(v))); });
  }
  function fillOptions(select, values) {
    var keep = select.value;
    while (select.options.length > 1) select.remove(1);
    values.forEach(function (v) { if (v[0]) select.appendChild(el("option", { value: v[0] }, v[1])); });
    select.value = keep;
  }

  // ---- charts -------------------------------------------------------------------------------
  function emptyChart(node, msg) { clear(node); node.appendChild(el("div", { "class": "empty" }, msg || "No data for these filters.")); }

  function timeline(node, points, bucket) {
    clear(node);
    if (!points.length) return emptyChart(node);
    var W = 900, H = 230, L = 40, B = 30, T = 10, R = 10;
    var keys = [["usually_appropriate", "c-ok"], ["may_be_appropriate", "c-maybe"], ["usually_not_appropriate", "c-bad"], ["unrated", "c-none"]];
    var max = 1;
    points.forEach(function (p) { var s = 0; keys.forEach(function (k) { s += p[k[0]]; }); if (s > max) max = s; });
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Rating mix over time", "data-chart": "timeline" });
    for (var g = 0; g <= 4; g++) {
      var y = T + (H - T - B) * (1 - g / 4);
      s.appendChild(svg("line", { x1: L, x2: W - R, y1: y, y2: y, "class": "grid-line" }));
      s.appendChild(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", "class": "axis" }, Math.round(max * g / 4)));
    }
    var n = points.length, slot = (W - L - R) / n, bw = Math.max(2, Math.min(40, slot * 0.75));
    var labelEvery = Math.ceil(n / 12);
    points.forEach(function (p, i) {
      var x = L + i * slot + (slot - bw) / 2, y0 = H - B, total = 0;
      var hourly = bucket === "hour";
      var label = hourly ? p.t.slice(11, 13) + "h" : day(p.t_ms).slice(5);
      var grp = svg("g", { "class": "clickable", "data-t": p.t });
      keys.forEach(function (k) {
        var v = p[k[0]]; total += v;
        if (!v) return;
        var h = (H - T - B) * v / max;
        y0 -= h;
        grp.appendChild(svg("rect", { x: x, y: y0, width: bw, height: h, "class": "bar " + k[1] }));
      });
      grp.appendChild(svg("title", null, (hourly ? p.t.slice(0, 16).replace("T", " ") : day(p.t_ms)) + ": " + total + " orders (" + p.usually_not_appropriate + " usually not appropriate)"));
      grp.addEventListener("click", function () {
        var p2 = currentParams();
        if (hourly) {
          p2.set("from", new Date(p.t_ms).toISOString()); p2.set("to", new Date(p.t_ms + 3600000).toISOString());
        } else {
          p2.set("from", day(p.t_ms)); p2.set("to", day(p.t_ms));
        }
        setParams(p2);
      });
      s.appendChild(grp);
      if (i % labelEvery === 0) s.appendChild(svg("text", { x: x + bw / 2, y: H - B + 16, "text-anchor": "middle", "class": "axis" }, label));
    });
    node.appendChild(s);
    var lg = $("legend-timeline");
    clear(lg);
    [["c-ok", "Usually appropriate"], ["c-maybe", "May be appropriate"], ["c-bad", "Usually not appropriate"], ["c-none", "Not rated (ambiguous, no variant…)"]].forEach(function (k) {
      var item = el("span"); item.appendChild(el("span", { "class": "sw " + k[0] })); item.appendChild(document.createTextNode(k[1])); lg.appendChild(item);
    });
  }

  // Horizontal stacked bars: rows [{label, title, parts: [[value, cls]], marker, right, rightClass, onClick}].
  function hbars(node, rows, name, opts) {
    clear(node);
    opts = opts || {};
    if (!rows.length) return emptyChart(node);
    var W = 560, rowH = 26, L = opts.labelWidth || 200, R = 110, H = rows.length * rowH + 8;
    var maxChars = Math.floor((L - 12) / 6.3);
    var max = 1;
    rows.forEach(function (r) { var s = 0; r.parts.forEach(function (p) { s += p[0]; }); if (s > max) max = s; });
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": name, "data-chart": name });
    rows.forEach(function (r, i) {
      var y = 4 + i * rowH, x = L;
      var grp = svg("g", { "class": r.onClick ? "clickable" : "" });
      var label = r.label.length > maxChars ? r.label.slice(0, maxChars - 1) + "…" : r.label;
      grp.appendChild(svg("text", { x: L - 8, y: y + 16, "text-anchor": "end" }, label));
      r.parts.forEach(function (p) {
        if (!p[0]) return;
        var w = (W - L - R - 6) * p[0] / max;
        grp.appendChild(svg("rect", { x: x, y: y + 4, width: Math.max(w, 1), height: rowH - 9, rx: 2, "class": "bar " + p[1] }));
        x += w;
      });
      if (r.marker) grp.appendChild(svg("text", { x: W - 62, y: y + 16, "text-anchor": "end", "class": "axis" }, r.marker));
      grp.appendChild(svg("text", { x: W - 4, y: y + 16, "text-anchor": "end", "class": r.rightClass || "axis" }, r.right));
      grp.appendChild(svg("title", null, r.title || r.label));
      if (r.onClick) grp.addEventListener("click", r.onClick);
      s.appendChild(grp);
    });
    node.appendChild(s);
  }

  function groupRows(list, labelOf, key, valueOf) {
    return list.map(function (g) {
      var value = valueOf(g);
      return {
        label: labelOf(g),
        title: labelOf(g) + ": " + g.rated + " rated of " + g.orders + " orders, " + g.usually_not_appropriate + " usually not appropriate (" + pct(g.not_appropriate_share) + "), " + g.overridden + " overridden",
        parts: [[g.usually_appropriate, "c-ok"], [g.may_be_appropriate, "c-maybe"], [g.usually_not_appropriate, "c-bad"], [g.orders - g.rated, "c-none"]],
        right: g.rated ? pct(g.not_appropriate_share) : "–",
        rightClass: g.not_appropriate_share > 0 ? "share-bad" : "axis",
        marker: g.overridden ? "◆" + g.overridden : "",
        onClick: function () { drill(key, value === null ? "none" : value); }
      };
    });
  }

  // ---- page parts ---------------------------------------------------------------------------
  function kpis(s) {
    var k = $("kpis");
    clear(k);
    var fb = s.feedback || {};
    [
      ["Orders checked", fmtInt(s.orders_evaluated), fmtInt(s.calls) + " hook calls", ""],
      ["Rated", fmtInt(s.orders_rated), fmtInt(s.usually_appropriate) + " usually appropriate", ""],
      ["Usually not appropriate", pct(s.not_appropriate_share), fmtInt(s.not_appropriate) + " of rated orders", s.not_appropriate_share > 0.2 ? "bad" : ""],
      ["Override rate", pct(fb.override_rate || 0), fmtInt(fb.cards_overridden) + " of " + fmtInt(fb.cards_with_feedback) + " cards with feedback", (fb.override_rate || 0) > 0.5 ? "warn" : ""],
      ["Suggestions accepted (issued)", fmtInt(fb.suggestions_accepted_known), fmtInt(fb.cards_accepted_known) + " cards; " + fmtInt(fb.accepted_entries_unknown_suggestion) + " accepts naming a suggestion not issued on the card", (fb.accepted_entries_unknown_suggestion || 0) > 0 ? "warn" : ""],
      ["Spooled (late) records", fmtInt((s.delivery || {}).spooled || 0), "answered while the store was down", ((s.delivery || {}).spooled || 0) > 0 ? "warn" : ""]
    ].forEach(function (x) {
      var d = el("div", { "class": "kpi " + x[3], "data-kpi": x[0] });
      d.appendChild(el("div", { "class": "l" }, x[0]));
      d.appendChild(el("div", { "class": "v" }, x[1]));
      d.appendChild(el("div", { "class": "l" }, x[2]));
      k.appendChild(d);
    });
    var st = $("status");
    clear(st);
    var a = s.audit || {};
    st.appendChild(el("span", { "class": "pill " + (a.store_up ? "ok" : "warn") }, a.store_up ? "store up" : "store unavailable"));
    if (a.spool_backlog) st.appendChild(el("span", { "class": "pill warn" }, a.spool_backlog + " records in spool"));
    if (s.pseudonymized) st.appendChild(el("span", { "class": "pill" }, "ids pseudonymized"));
  }

  function summary(s) {
    kpis(s);
    timeline($("chart-timeline"), s.timeline.points, s.timeline.bucket);
    hbars($("chart-variant"), groupRows(s.by_variant, function (g) { return g.variant || "(no variant)"; }, "variant", function (g) { return g.variant; }), "variant", { labelWidth: 120 });
    hbars($("chart-procedure"), groupRows(s.by_procedure, function (g) { return g.procedure_name || "(not recognised)"; }, "procedure", function (g) { return g.procedure_id; }), "procedure", { labelWidth: 250 });
    hbars($("chart-reasons"), s.override_reasons.map(function (r) {
      return { label: r.display, title: r.display + (r.code ? " (" + r.code + ")" : "") + ": " + r.count + ", " + r.with_comment + " with a comment", parts: [[r.count, "c-bad"]], right: fmtInt(r.count) };
    }), "reasons");
    hbars($("chart-users"), s.by_user.map(function (g) {
      return {
        label: shortId(g.user), title: g.user + ": " + g.orders + " orders, " + g.usually_not_appropriate + " usually not appropriate, " + g.overridden + " overridden",
        parts: [[g.orders - g.usually_not_appropriate, "c-accent"], [g.usually_not_appropriate, "c-bad"]],
        right: fmtInt(g.orders), marker: g.overridden ? "◆" + g.overridden : "",
        onClick: function () { drill("user", g.user); }
      };
    }), "users", { labelWidth: 150 });
    fillOptions($("filters").elements.service, s.by_service.map(function (g) { return [g.service, g.service]; }));
    fillOptions($("filters").elements.variant, s.by_variant.filter(function (g) { return g.variant; }).map(function (g) { return [g.variant, g.variant]; }));
    fillOptions($("filters").elements.procedure, s.by_procedure.filter(function (g) { return g.procedure_id; }).map(function (g) { return [g.procedure_id, g.procedure_name]; }));
    fillForm(currentParams());
  }

  function ratingBadge(it) {
    if (it.rating === null || it.rating === undefined) return el("span", { "class": "badge none" }, "–");
    var c = CAT[it.category] || ["none", ""];
    return el("span", { "class": "badge " + c[0], title: c[1] }, it.rating);
  }

  function records(page) {
    var tb = $("records").tBodies[0];
    clear(tb);
    state.total = page.total;
    $("records-count").textContent = fmtInt(page.total) + " orders";
    $("page-label").textContent = page.total ? (state.offset + 1) + "–" + Math.min(state.offset + PAGE, page.total) : "";
    $("prev").disabled = state.offset === 0;
    $("next").disabled = state.offset + PAGE >= page.total;
    if (!page.items.length) {
      var tr = el("tr"); var td = el("td", { colspan: 9, "class": "empty" }, "No records for these filters."); tr.appendChild(td); tb.appendChild(tr);
      return;
    }
    page.items.forEach(function (it) {
      var tr = el("tr", { "class": "record", "data-variant": it.chosen_variant || "", "data-call": it.call_id });
      tr.appendChild(el("td", null, it.received_at.replace("T", " ").slice(0, 19)));
      tr.appendChild(el("td", null, it.hook));
      tr.appendChild(el("td", { title: it.user_id }, shortId(it.user_id)));
      var p = el("td"); p.appendChild(el("span", { "class": "trunc", title: it.procedure_name || it.order_codes.join(" ") }, it.procedure_name || it.order_codes.join(" ") || "–")); tr.appendChild(p);
      tr.appendChild(el("td", null, it.chosen_variant || (it.candidate_variants.length ? it.candidate_variants.join("/") + "?" : "–")));
      var r = el("td"); r.appendChild(ratingBadge(it)); tr.appendChild(r);
      tr.appendChild(el("td", null, it.pama_rating || "–"));
      tr.appendChild(el("td", null, it.outcome));
      var f = el("td");
      if (!it.feedback.length) f.appendChild(el("span", { "class": "muted" }, it.card_uuid ? "none" : "no card"));
      it.feedback.forEach(function (x) { f.appendChild(el("span", { "class": "tag " + x.outcome }, x.outcome)); f.appendChild(document.createTextNode(" ")); });
      tr.appendChild(f);
      tr.addEventListener("click", function () { detail(it); });
      tb.appendChild(tr);
    });
  }

  function detail(it) {
    var dl = $("detail-body");
    clear(dl);
    function row(k, v) {
      dl.appendChild(el("dt", null, k));
      var dd = el("dd");
      if (Array.isArray(v)) { if (!v.length) dd.textContent = "–"; v.forEach(function (x) { dd.appendChild(el("div", null, x)); }); }
      else dd.textContent = (v === null || v === undefined || v === "") ? "–" : String(v);
      dl.appendChild(dd);
    }
    row("Received", it.received_at);
    row("Service / hook", it.service_id + " / " + it.hook);
    row("hookInstance", it.hook_instance);
    row("Call id", it.call_id + " #" + it.order_index);
    row("Ordering user", it.user_id);
    row("Patient", it.patient_id);
    row("Encounter", it.encounter_id);
    row("Order", it.order_ref);
    row("Order codes", it.order_codes);
    row("Procedure", it.procedure_name ? it.procedure_name + " (" + it.procedure_id + ")" : null);
    row("Matched code", it.matched_code);
    row("Outcome", it.outcome);
    row("Candidate variants", it.candidate_variants);
    row("Chosen variant", it.chosen_variant);
    row("Rating", it.rating !== null ? it.rating + " – " + ((CAT[it.category] || [0, ""])[1]) : null);
    row("Evidence", it.evidence);
    row("PAMA rating", it.pama_rating);
    row("Consult id", it.consult_id);
    row("Assumptions", it.assumptions);
    row("Deciding facts", it.deciding_facts);
    row("Card", it.card_uuid);
    row("Suggestions", it.suggestions.length ? it.suggestions.map(function (x) {
      return x.label + " (rating " + x.rating + ")" + (x.recommended ? " – recommended" : "");
    }) : it.suggestion_uuids);
    row("Safety notes", it.safety_notes);
    row("Knowledge version", it.knowledge_version);
    row("Latency", it.latency_ms.toFixed(1) + " ms");
    row("Audit delivery", it.delivery);
    row("Source", it.source + (it.run_id ? " (batch run " + it.run_id + ")" : ""));
    it.feedback.forEach(function (f, i) {
      var reason = f.override_reason ? (f.override_reason.display || f.override_reason.code) : null;
      row("Feedback " + (i + 1), [f.outcome + " at " + f.outcome_timestamp].concat(
        f.accepted_suggestions.length ? ["accepted: " + f.accepted_suggestions.join(", ")] : [],
        reason ? ["reason: " + reason] : [], f.user_comment ? ["comment: " + f.user_comment] : []));
    });
    $("detail").hidden = false;
  }

  function download(kind) {
    var p = currentParams();
    api("/audit/api/evaluations." + kind + (p.toString() ? "?" + p.toString() : "")).then(function (r) { return r.blob(); }).then(function (b) {
      var a = el("a", { href: URL.createObjectURL(b), download: "vcf-cds-audit." + kind });
      document.body.appendChild(a); a.click(); a.remove();
    }).catch(showError);
  }

  function showError(e) {
    if (e && e.message === "unauthorized") { showLogin("The token was not accepted."); return; }
    document.body.setAttribute("data-state", "error");
    var st = $("status"); clear(st); st.appendChild(el("span", { "class": "pill warn" }, "error: " + (e && e.message)));
  }

  function showLogin(msg) {
    $("main").hidden = true;
    $("login").hidden = false;
    document.body.setAttribute("data-state", "login");
    if (msg) { $("login-error").hidden = false; $("login-error").textContent = msg; }
  }

  function load() {
    if (!token()) { showLogin(); return; }
    $("login").hidden = true;
    $("main").hidden = false;
    document.body.setAttribute("data-state", "loading");
    var p = currentParams();
    fillForm(p);
    var q = p.toString();
    var lp = new URLSearchParams(p); lp.set("limit", PAGE); lp.set("offset", state.offset);
    var span = (p.get("from") && p.get("to") && (Date.parse(p.get("to")) - Date.parse(p.get("from")) <= 2 * 86400000)) ? "hour" : "day";
    var sp = new URLSearchParams(p); sp.set("bucket", span);
    Promise.all([
      api("/audit/api/summary?" + sp.toString()).then(function (r) { return r.json(); }),
      api("/audit/api/evaluations?" + lp.toString()).then(function (r) { return r.json(); })
    ]).then(function (res) {
      summary(res[0]);
      records(res[1]);
      document.body.setAttribute("data-state", "ready");
      document.body.setAttribute("data-query", q);
    }).catch(showError);
  }

  document.addEventListener("DOMContentLoaded", function () {
    takeTokenFromFragment();
    $("login-form").addEventListener("submit", function (e) {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value);
      $("token").value = "";
      load();
    });
    $("filters").addEventListener("submit", function (e) {
      e.preventDefault();
      var p = new URLSearchParams();
      var f = e.target;
      FILTERS.forEach(function (k) { if (f.elements[k] && f.elements[k].value) p.set(k, f.elements[k].value); });
      var cur = currentParams();
      ["rating", "pama", "hook", "hook_instance", "card", "call", "delivery"].forEach(function (k) { if (cur.get(k)) p.set(k, cur.get(k)); });
      setParams(p);
    });
    $("reset").addEventListener("click", function () { setParams(new URLSearchParams()); });
    $("csv").addEventListener("click", function () { download("csv"); });
    $("json").addEventListener("click", function () { download("json"); });
    $("prev").addEventListener("click", function () { state.offset = Math.max(0, state.offset - PAGE); load(); });
    $("next").addEventListener("click", function () { state.offset += PAGE; load(); });
    $("detail-close").addEventListener("click", function () { $("detail").hidden = true; });
    window.addEventListener("popstate", function () { state.offset = 0; load(); });
    load();
  });
})();
