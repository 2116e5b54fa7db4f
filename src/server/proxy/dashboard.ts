/**
 * The proxy's live dashboard: one self-contained page (no CDN, no build step — the GPU box may be
 * offline) that polls `/carbon/stats` every second and shows the requests' emissions first, then
 * idle and the machine's total; power now; energy per request on a time axis and as a table
 * (newest first, with its kind and whether its trace reached the client); totals per model, kind
 * of call, API key and user, with energy per 1,000 tokens where the same requests gave both;
 * what is measured and what is estimated. One unit per column. Every number
 * it shows carries its raw value in `data-value`, so a test can hold the page to the JSON.
 *
 * A period picker (today, 7 days, 30 days, a calendar month; whole UTC days, as the books' days
 * are) turns it into the books of that period: `/carbon/stats?from=…&to=…&by=model`, `by=api_key`
 * and `by=user` — from the ledger, or the fleet's database with `--db` — read every 30 s, with
 * the totals (requests, idle, the machine) and the top 10 models, API keys and users by CO2eq. A
 * period the proxy cannot answer (no ledger, no database) shows the proxy's message in place.
 *
 * @example
 * ```ts
 * new Response(dashboardHtml(), { headers: { 'content-type': 'text/html; charset=utf-8' } });
 * ```
 */
export function dashboardHtml(): string {
  return PAGE;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>carbon-trace</title>
<link rel="icon" href="data:,">
<style>
  :root { --bg: #0f1412; --panel: #17201c; --line: #26332d; --text: #e4ece7; --muted: #8fa39a; --cpu: #5fb3f9; --gpu: #f2a541; --ram: #a98ff5; --idle: #3d4a44; --accent: #4cd39b; --warn: #e0795b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
  header { padding: 18px 24px 12px; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: baseline; }
  h1 { margin: 0; font-size: 18px; letter-spacing: .02em; } h1 span { color: var(--accent); }
  header .meta { color: var(--muted); font-size: 12px; }
  main { padding: 18px 24px 28px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }
  section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
  section.wide { grid-column: 1 / -1; }
  h2 { margin: 0 0 10px; font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .08em; }
  .big { font-size: 28px; font-weight: 650; font-variant-numeric: tabular-nums; }
  .unit { font-size: 14px; color: var(--muted); margin-left: 3px; font-weight: 400; }
  .row { display: flex; justify-content: space-between; gap: 12px; padding: 3px 0; font-variant-numeric: tabular-nums; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
  .badge { font-size: 11px; padding: 1px 7px; border-radius: 9px; border: 1px solid var(--line); color: var(--muted); margin-left: 6px; }
  .badge.measured { color: var(--accent); border-color: #2f6b52; }
  .badge.warn { color: var(--warn); border-color: #6b3a2f; }
  .sub { color: var(--muted); font-size: 12px; margin: 2px 0 8px; }
  .pair { display: flex; flex-wrap: wrap; gap: 16px 32px; } .pair > div { flex: 1 1 420px; }
  td.left, th.left { text-align: left; }
  .row.total { border-top: 1px solid var(--line); margin-top: 4px; padding-top: 6px; color: var(--muted); }
  .bar { display: flex; height: 12px; border-radius: 6px; overflow: hidden; background: var(--idle); margin: 8px 0 6px; }
  .bar div { height: 100%; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: right; padding: 6px 8px; border-bottom: 1px solid var(--line); }
  th:first-child, td:first-child { text-align: left; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  svg text { fill: var(--muted); font-size: 11px; }
  .legend { display: flex; gap: 14px; color: var(--muted); font-size: 12px; margin-top: 6px; }
  .empty { color: var(--muted); padding: 24px 0; text-align: center; }
  footer { color: var(--muted); font-size: 12px; padding: 0 24px 18px; }
  [hidden] { display: none !important; }
  .period { margin-left: auto; display: flex; flex-wrap: wrap; align-items: center; gap: 6px 0; }
  .period button { font: inherit; font-size: 12px; background: var(--panel); color: var(--muted); border: 1px solid var(--line); padding: 4px 11px; margin-left: -1px; cursor: pointer; }
  .period button:first-of-type { border-radius: 6px 0 0 6px; margin-left: 0; }
  .period button:last-of-type { border-radius: 0 6px 6px 0; }
  .period button:hover { color: var(--text); }
  .period button[aria-pressed="true"] { color: var(--text); background: #1d3329; border-color: #2f6b52; position: relative; }
  .period input { margin-left: 8px; font: inherit; font-size: 12px; background: var(--panel); color: var(--text); border: 1px solid var(--line); border-radius: 6px; padding: 3px 6px; color-scheme: dark; }
  .period .meta { margin-left: 12px; }
  /* Three cards across on a laptop's width, the tables below them; figures never broken across lines. */
  #period-view { grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
  #period-view .row > span:last-child { white-space: nowrap; text-align: right; }
  #period-view .row > span.source { white-space: normal; }
  .message { color: var(--warn); padding: 8px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
</style>
</head>
<body>
<header>
  <h1>carbon-trace <span>proxy</span></h1>
  <div class="meta" id="upstream">connecting…</div>
  <div class="meta" id="meter"></div>
  <div class="meta" id="grid"></div>
  <nav class="period" aria-label="period">
    <button type="button" data-period="live" aria-pressed="true">live</button>
    <button type="button" data-period="today" aria-pressed="false">today</button>
    <button type="button" data-period="7d" aria-pressed="false">7 days</button>
    <button type="button" data-period="30d" aria-pressed="false">30 days</button>
    <button type="button" data-period="month" aria-pressed="false">a month</button>
    <input type="month" id="month" aria-label="calendar month (UTC)" hidden>
    <span class="meta" id="period-range"></span>
  </nav>
</header>
<main id="live">
  <section>
    <h2>Emissions since start</h2>
    <div class="big" id="emissions-requests" data-value="0">—</div>
    <div class="sub">attributed to <span id="requests" data-value="0">—</span> requests</div>
    <div class="row"><span><span class="swatch" style="background:var(--idle)"></span>idle (no request in flight)</span><span id="emissions-idle" data-value="0">—</span></div>
    <div class="row" id="emissions-unattributed-row"><span><span class="swatch" style="background:var(--warn)"></span>unattributed (a source could not be read)</span><span id="emissions-unattributed" data-value="0">—</span></div>
    <div class="row total"><span>the machine in all</span><span id="emissions-total" data-value="0">—</span></div>
  </section>
  <section>
    <h2>Energy since start</h2>
    <div class="big" id="energy-attributed" data-value="0">—</div>
    <div class="sub">to requests: <span id="energy-share" data-value="0">—</span> of what the machine drew</div>
    <div class="bar" id="split-bar"></div>
    <div class="row"><span><span class="swatch" style="background:var(--idle)"></span>idle</span><span id="energy-idle" data-value="0">—</span></div>
    <div class="row total"><span>the machine in all</span><span id="energy-total" data-value="0">—</span></div>
  </section>
  <section>
    <h2>Power now</h2>
    <div class="big" id="power-total" data-value="0">—</div>
    <div id="power"></div>
    <div class="row"><span>requests in flight</span><span id="active" data-value="0">—</span></div>
  </section>
  <section class="wide">
    <h2>Energy per request, over time</h2>
    <div id="chart"></div>
    <div class="legend" id="legend"></div>
  </section>
  <section class="wide">
    <h2>Recent requests — newest first</h2>
    <div id="recent"></div>
  </section>
  <section class="wide">
    <h2>Per model</h2>
    <div id="models"></div>
  </section>
  <section class="wide">
    <h2>Per kind of call</h2>
    <div id="kinds"></div>
  </section>
  <section class="wide">
    <h2>Top API keys and users</h2>
    <div class="pair"><div id="keys"></div><div id="users"></div></div>
  </section>
</main>
<main id="period-view" hidden>
  <section class="wide" id="period-error" hidden>
    <h2>The books of this period</h2>
    <div class="message" id="period-message"></div>
  </section>
  <section class="period-body">
    <h2>Emissions over the period</h2>
    <div class="big" id="p-emissions-requests" data-value="0">—</div>
    <div class="sub">attributed to <span id="p-requests" data-value="0">—</span> requests</div>
    <div class="row"><span><span class="swatch" style="background:var(--idle)"></span>idle (no request in flight)</span><span id="p-emissions-idle" data-value="0">—</span></div>
    <div class="row" id="p-emissions-unattributed-row"><span><span class="swatch" style="background:var(--warn)"></span>unattributed (a source could not be read)</span><span id="p-emissions-unattributed" data-value="0">—</span></div>
    <div class="row total"><span>the machine in all</span><span id="p-emissions-total" data-value="0">—</span></div>
  </section>
  <section class="period-body">
    <h2>Energy over the period</h2>
    <div class="big" id="p-energy-requests" data-value="0">—</div>
    <div class="sub">to requests: <span id="p-energy-share" data-value="0">—</span> of what the machine drew</div>
    <div class="bar" id="p-split-bar"></div>
    <div class="row"><span><span class="swatch" style="background:var(--idle)"></span>idle</span><span id="p-energy-idle" data-value="0">—</span></div>
    <div class="row" id="p-energy-unattributed-row"><span><span class="swatch" style="background:var(--warn)"></span>unattributed</span><span id="p-energy-unattributed" data-value="0">—</span></div>
    <div class="row total"><span>the machine in all</span><span id="p-energy-total" data-value="0">—</span></div>
  </section>
  <section class="period-body">
    <h2>Measured, and tokens</h2>
    <div class="big" id="p-measured-share" data-value="0">—</div>
    <div class="sub">of the requests' energy was measured; the rest estimated</div>
    <div class="row"><span>requests with an energy figure</span><span id="p-requests-with-energy" data-value="0">—</span></div>
    <div class="row"><span>requests measured</span><span id="p-measured-requests" data-value="0">—</span></div>
    <div class="row"><span>tokens in</span><span id="p-prompt-tokens" data-value="0">—</span></div>
    <div class="row"><span>tokens out</span><span id="p-completion-tokens" data-value="0">—</span></div>
    <div class="row total"><span>read from</span><span class="source" id="p-source">—</span></div>
  </section>
  <section class="wide period-body">
    <h2>Per model — top 10 by CO2eq</h2>
    <div id="p-models"></div>
  </section>
  <section class="wide period-body">
    <h2>Per API key — top 10 by CO2eq</h2>
    <div id="p-keys"></div>
  </section>
  <section class="wide period-body">
    <h2>Per user — top 10 by CO2eq</h2>
    <div id="p-users"></div>
  </section>
</main>
<footer id="updated">waiting for /carbon/stats…</footer>
<script>
(() => {
  const COMPONENTS = ['cpu', 'gpu', 'ram'];
  // Rows of the models table; the keys and users tables show 5.
  const TOP = 10;
  const $ = (id) => document.getElementById(id);
  const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const STEPS = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n']];
  // One unit for a set of values (a column, a panel): the one that suits the largest of them.
  const scaleFor = (values) => {
    const max = Math.max(0, ...values.filter((v) => Number.isFinite(v)).map(Math.abs));
    return max === 0 ? [1, ''] : STEPS.find(([s]) => max >= s * 0.9995) || STEPS[STEPS.length - 1];
  };
  const inUnit = (value, [scale, p], unit) => {
    if (value == null || !Number.isFinite(value)) return '—';
    if (value === 0) return '0 ' + prefixed(p, unit);
    const x = value / scale;
    const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3;
    return x.toFixed(digits) + ' ' + prefixed(p, unit);
  };
  // Grams above a kilogram are tonnes, as emissions are reported (and as src/core/format.ts writes them).
  const prefixed = (p, unit) => unit[0] === 'g' && (p === 'M' || p === 'G') ? (p === 'M' ? 't' : 'kt') + unit.slice(1) : p + unit;
  const one = (value, unit) => inUnit(value, scaleFor([value]), unit);
  const WH = (joules) => (joules == null ? null : joules / 3600);
  const set = (id, value, text) => { const el = $(id); el.dataset.value = String(value); el.textContent = text; };
  const big = (id, value, text) => {
    const el = $(id);
    el.dataset.value = String(value);
    const at = text.lastIndexOf(' ');
    el.innerHTML = esc(text.slice(0, at)) + '<span class="unit">' + esc(text.slice(at + 1)) + '</span>';
  };
  // Whether the trace reached the client: null is not known (a row of a ledger older than that column).
  const delivered = (d) => d == null ? '<span data-delivered="unknown">—</span>' : d ? '<span class="badge measured" data-delivered="true">delivered</span>' : '<span class="badge warn" data-delivered="false">not delivered</span>';
  const badge = (measured, known) => known === false ? '<span class="badge warn">no figure</span>' : '<span class="badge ' + (measured ? 'measured' : '') + '">' + (measured ? 'measured' : 'estimated') + '</span>';

  // What the proxy is in front of, its meter and its grid: the header, in every view.
  function renderHeader(s) {
    $('upstream').textContent = '→ ' + s.upstream + (s.upstreamReachable === false ? ' (not reachable)' : '');
    $('meter').textContent = s.meter;
    $('grid').textContent = s.grid.gCo2PerKwh + ' gCO2eq/kWh (' + s.grid.source + ')';
  }

  function render(s) {
    window.__carbonStats = s;
    headerRead = true;
    renderHeader(s);

    const e = s.emissionsGrams;
    big('emissions-requests', e.attributed, one(e.attributed, 'g CO2eq'));
    set('requests', s.requests, String(s.requests));
    const eScale = scaleFor([e.idle, e.unattributed, e.total]);
    set('emissions-idle', e.idle, inUnit(e.idle, eScale, 'g'));
    set('emissions-unattributed', e.unattributed, inUnit(e.unattributed, eScale, 'g'));
    $('emissions-unattributed-row').style.display = e.unattributed > 0 ? '' : 'none';
    set('emissions-total', e.total, inUnit(e.total, eScale, 'g'));

    big('energy-attributed', s.attributedJoules, one(WH(s.attributedJoules), 'Wh'));
    const share = s.totalJoules > 0 ? s.attributedJoules / s.totalJoules : 0;
    set('energy-share', share, (100 * share).toFixed(1) + ' %');
    $('split-bar').innerHTML = '<div style="width:' + (100 * share).toFixed(2) + '%;background:var(--accent)"></div>';
    const jScale = scaleFor([WH(s.idleJoules), WH(s.totalJoules)]);
    set('energy-idle', s.idleJoules, inUnit(WH(s.idleJoules), jScale, 'Wh'));
    set('energy-total', s.totalJoules, inUnit(WH(s.totalJoules), jScale, 'Wh'));

    const power = s.powerWatts || {};
    const shown = COMPONENTS.filter((c) => s.byComponent[c]);
    const powerTotal = shown.reduce((sum, c) => sum + (power[c] || 0), 0);
    const pScale = scaleFor([powerTotal]);
    big('power-total', powerTotal, inUnit(powerTotal, pScale, 'W'));
    $('power').innerHTML = shown.map((c) => {
      const comp = s.byComponent[c];
      return '<div class="row"><span><span class="swatch" style="background:var(--' + c + ')"></span>' + c.toUpperCase() + badge(comp.measured) + '</span>' +
        '<span data-component="' + c + '" data-value="' + (power[c] || 0) + '">' + esc(inUnit(power[c] || 0, pScale, 'W')) + '</span></div>';
    }).join('') || '<div class="empty">no energy source</div>';
    set('active', s.activeRequests, String(s.activeRequests));

    $('legend').innerHTML = shown.map((c) => '<span><span class="swatch" style="background:var(--' + c + ')"></span>' + c.toUpperCase() + '</span>').join('') +
      '<span>one bar per request, as wide as it lasted; its height is its energy</span>';
    renderChart(s.recent);
    renderRecent(s.recent);
    const omitted = s.rowsOmitted || {};
    $('models').innerHTML = table(s.byModel, 'model', 'no model called yet', s.attributedJoules, TOP, omitted.byModel, true);
    $('kinds').innerHTML = table(s.byKind, 'kind', 'no request yet', s.attributedJoules, TOP, omitted.byKind, true);
    $('keys').innerHTML = table(s.byApiKey, 'API key (one-way id)', 'no request yet', s.attributedJoules, 5, omitted.byApiKey);
    $('users').innerHTML = table(s.byUser, 'user', 'no request yet', s.attributedJoules, 5, omitted.byUser);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString() + ' · since ' + new Date(s.since).toLocaleString() + ' · refreshes every second';
  }

  // Requests on a time axis: each bar spans the request's own duration, so a short one is a thin
  // but visible mark at its time, and a long stream is wide; bars never shrink below 2 px.
  function renderChart(recent) {
    if (recent.length === 0) { $('chart').innerHTML = '<div class="empty">no request yet — send a chat completion through the proxy</div>'; return; }
    const width = Math.max(320, $('chart').clientWidth || 900), height = 190, left = 64, bottom = 22, top = 8;
    const ends = recent.map((r) => Date.parse(r.at));
    const starts = recent.map((r, i) => ends[i] - r.durationSeconds * 1000);
    const first = Math.min(...starts), t1 = Math.max(...ends);
    const t0 = first - Math.max(200, (t1 - first) * 0.02);
    const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (width - left - 8);
    const max = Math.max(...recent.map((r) => r.totalJoules || 0), 1e-12);
    const yScale = scaleFor([WH(max)]);
    const plot = height - bottom - top;
    const bars = recent.map((r, i) => {
      const x0 = x(starts[i]), w = Math.max(2, x(ends[i]) - x0);
      let y = height - bottom;
      const parts = r.totalJoules == null ? '<rect x="' + x0.toFixed(1) + '" y="' + (height - bottom - 6) + '" width="' + w.toFixed(1) + '" height="6" fill="var(--warn)"></rect>' :
        COMPONENTS.filter((c) => r.joules[c] > 0).map((c) => {
          const h = Math.max(1, (r.joules[c] / max) * plot);
          y -= h;
          return '<rect x="' + x0.toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + w.toFixed(1) + '" height="' + h.toFixed(1) + '" fill="var(--' + c + ')" fill-opacity="0.85"></rect>';
        }).join('');
      const title = (r.model || 'unknown model') + ' · ' + new Date(ends[i]).toLocaleTimeString() + ': ' + (r.totalJoules == null ? 'no energy figure' : one(WH(r.totalJoules), 'Wh') + ', ' + one(r.emissionsGrams, 'g CO2eq')) + ' in ' + r.durationSeconds.toFixed(2) + ' s';
      return '<g class="request" data-value="' + r.totalJoules + '"><title>' + esc(title) + '</title>' + parts + '</g>';
    }).join('');
    const ticks = [0, 0.5, 1].map((f) => {
      const t = t0 + f * (t1 - t0);
      return '<text x="' + x(t).toFixed(1) + '" y="' + (height - 4) + '" text-anchor="' + (f === 0 ? 'start' : f === 1 ? 'end' : 'middle') + '">' + esc(new Date(t).toLocaleTimeString()) + '</text>';
    }).join('');
    const axis = '<text x="0" y="' + (top + 10) + '">' + esc(inUnit(WH(max), yScale, 'Wh')) + '</text><text x="0" y="' + (height - bottom) + '">0</text>' +
      '<line x1="' + left + '" x2="' + width + '" y1="' + (height - bottom) + '" y2="' + (height - bottom) + '" stroke="var(--line)"></line>' + ticks;
    $('chart').innerHTML = '<svg width="100%" viewBox="0 0 ' + width + ' ' + height + '" role="img" aria-label="energy per request over time">' + axis + bars + '</svg>';
  }

  function renderRecent(recent) {
    if (recent.length === 0) { $('recent').innerHTML = '<div class="empty">no request yet</div>'; return; }
    // /carbon/stats lists them newest first.
    const rows = recent.slice(0, 12);
    const eScale = scaleFor(rows.map((r) => WH(r.totalJoules)));
    const gScale = scaleFor(rows.map((r) => r.emissionsGrams));
    $('recent').innerHTML = '<table><thead><tr><th>time</th><th class="left">model</th><th class="left">kind</th><th>status</th><th>energy</th><th>CO2eq</th><th>duration</th><th>tokens in</th><th>tokens out</th><th>figure</th><th>trace</th></tr></thead><tbody>' +
      rows.map((r) => '<tr class="recent"><td>' + esc(new Date(r.at).toLocaleTimeString()) + '</td><td class="left">' + esc(r.model || '—') + (r.streamed ? ' <span class="badge">stream</span>' : '') +
        '</td><td class="left">' + esc(r.kind || '—') + '</td><td>' + r.status + '</td><td data-value="' + r.totalJoules + '">' + esc(inUnit(WH(r.totalJoules), eScale, 'Wh')) + '</td><td data-value="' + r.emissionsGrams + '">' + esc(inUnit(r.emissionsGrams, gScale, 'g')) +
        '</td><td>' + r.durationSeconds.toFixed(3) + ' s</td><td>' + (r.promptTokens ?? '—') + '</td><td>' + (r.completionTokens ?? '—') + '</td><td>' + badge(r.measured, r.totalJoules != null) + '</td><td>' + delivered(r.traceDelivered) + '</td></tr>').join('') + '</tbody></table>';
  }

  // Energy per 1,000 tokens of one kind: the energy and the tokens of the same requests (those
  // whose usage reported that kind and that have a figure), never a row's whole energy.
  const per1k = (basis) => (basis && basis.tokens > 0 ? WH((1000 * basis.joules) / basis.tokens) : null);
  // Of the requests whose delivery is known, the share whose trace reached the client.
  const deliveredShare = (m) => {
    const known = (m.tracesDelivered || 0) + (m.tracesNotDelivered || 0);
    return known > 0 ? m.tracesDelivered / known : null;
  };

  function table(book, label, empty, attributed, limit, omitted, perToken) {
    let rows = Object.entries(book || {});
    if (rows.length === 0) return '<div class="empty">' + empty + '</div>';
    rows.sort((a, b) => b[1].joules - a[1].joules);
    const more = Math.max(0, rows.length - limit) + (omitted || 0);
    rows = rows.slice(0, limit);
    const eScale = scaleFor(rows.map(([, r]) => WH(r.joules)));
    const gScale = scaleFor(rows.map(([, r]) => r.emissionsGrams));
    const pScale = scaleFor(rows.map(([, r]) => WH(r.requests > 0 ? r.joules / r.requests : 0)));
    const inScale = scaleFor(rows.map(([, r]) => per1k(r.withTokens && r.withTokens.prompt)));
    const outScale = scaleFor(rows.map(([, r]) => per1k(r.withTokens && r.withTokens.completion)));
    const attr = label === 'model' ? 'data-model' : 'data-row';
    const head = '<th>' + esc(label) + '</th><th>requests</th><th>energy</th><th>CO2eq</th><th>per request</th>' +
      (perToken ? '<th>per 1k tokens in</th><th>per 1k tokens out</th><th>traces delivered</th>' : '') + '<th>share</th>';
    const columns = perToken ? 9 : 6;
    const perTokenCells = (m) => {
      if (!perToken) return '';
      const pin = per1k(m.withTokens && m.withTokens.prompt), pout = per1k(m.withTokens && m.withTokens.completion), d = deliveredShare(m);
      return '<td class="per-1k-in" data-value="' + pin + '">' + esc(inUnit(pin, inScale, 'Wh')) + '</td><td class="per-1k-out" data-value="' + pout + '">' + esc(inUnit(pout, outScale, 'Wh')) +
        '</td><td class="delivered" data-value="' + d + '">' + (d == null ? '—' : (100 * d).toFixed(1) + ' %') + '</td>';
    };
    return '<table><thead><tr>' + head + '</tr></thead><tbody>' +
      rows.map(([name, m]) => '<tr ' + attr + '="' + esc(name) + '"><td>' + esc(name) + '</td><td data-value="' + m.requests + '">' + m.requests +
        '</td><td data-value="' + m.joules + '">' + esc(inUnit(WH(m.joules), eScale, 'Wh')) + '</td><td data-value="' + m.emissionsGrams + '">' + esc(inUnit(m.emissionsGrams, gScale, 'g')) +
        '</td><td>' + esc(inUnit(WH(m.requests > 0 ? m.joules / m.requests : 0), pScale, 'Wh')) + '</td>' + perTokenCells(m) + '<td>' + (attributed > 0 ? (100 * m.joules / attributed).toFixed(1) + ' %' : '—') + '</td></tr>').join('') +
      (more > 0 ? '<tr class="more"><td colspan="' + columns + '" class="left">and ' + more + ' more (all of them: /carbon/stats)</td></tr>' : '') + '</tbody></table>';
  }

  // With an admin token, the page is opened as /carbon?token=…: the stats need it too.
  const authHeaders = () => {
    const token = typeof location === 'undefined' ? null : new URLSearchParams(location.search).get('token');
    return token ? { authorization: 'Bearer ' + token } : {};
  };
  // What is shown: 'live', or a period ('today', '7d', '30d', 'month'). A change of view starts a
  // new generation: an answer to an older one is not drawn, and its timer is not renewed.
  let view = 'live';
  let generation = 0;
  let timer;

  async function refresh() {
    const mine = generation;
    try {
      // Only what the page shows: the largest rows of each table (the whole tables can be megabytes).
      const response = await fetch('/carbon/stats?top=' + TOP, { cache: 'no-store', headers: authHeaders() });
      if (mine !== generation) return;
      if (response.ok) render(await response.json());
      else $('updated').textContent = '/carbon/stats answered ' + response.status;
    } catch (error) {
      if (mine === generation) $('updated').textContent = 'the proxy is not answering: ' + error.message;
    } finally {
      if (mine === generation) timer = setTimeout(refresh, 1000);
    }
  }

  // ——— A period's books: whole UTC days, as the books count days (and as the fleet's daily rollups answer them). ———
  const DAY = 86400000;
  // A period's view reads a file or a database: not more often than this.
  const PERIOD_EVERY_MS = 30000;
  const PERIODS = ['live', 'today', '7d', '30d', 'month'];
  const GROUPS = [['model', 'p-models', 'model', 'no request in this period'], ['api_key', 'p-keys', 'API key (one-way id)', 'no request in this period'], ['user', 'p-users', 'user', 'no request in this period']];
  // Where a report was read: a whole UTC day is summed from daily rollups, the rest from the rows.
  const SOURCES = { ledger: "this proxy's ledger (its rows)", 'ledger rollups': "this proxy's ledger (its daily rollups)", rows: "the fleet's database (its rows)", 'daily rollups': "the fleet's database (its daily rollups)" };
  const isoDay = (t) => new Date(t).toISOString().slice(0, 10);
  const thisMonth = () => new Date().toISOString().slice(0, 7);
  const count = (n) => (n == null || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US'));
  const percent = (part, whole) => (whole > 0 ? (100 * part) / whole : null);
  const showPercent = (p) => (p == null ? '—' : p.toFixed(1) + ' %');
  // The report's units: kWh and kg CO2eq; the page's: Wh and g, scaled as everywhere on it.
  const wh = (kwh) => kwh * 1000;
  const grams = (kg) => kg * 1000;

  /** The period's bounds ('from' included, 'to' not) and how the page names it. */
  function periodOf(kind, month) {
    const today = Math.floor(Date.now() / DAY) * DAY;
    if (kind === 'month') {
      const [y, m] = (/^[0-9]{4}-[0-9]{2}$/.test(month) ? month : thisMonth()).split('-').map(Number);
      const from = Date.UTC(y, m - 1, 1), to = Date.UTC(y, m, 1);
      return { from: isoDay(from), to: isoDay(to), label: new Date(from).toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' }) + ': ' + isoDay(from) + ' to ' + isoDay(to - DAY) + ' (UTC)' };
    }
    const days = kind === '30d' ? 30 : kind === '7d' ? 7 : 1;
    const from = today - (days - 1) * DAY;
    return { from: isoDay(from), to: isoDay(today + DAY), label: days === 1 ? 'today, ' + isoDay(today) + ' (UTC)' : isoDay(from) + ' to ' + isoDay(today) + ' (UTC, ' + days + ' days)' };
  }

  /** A period's report, or an error saying what the proxy answered (its message, when it gave one). */
  async function report(url) {
    let response;
    try {
      response = await fetch(url, { cache: 'no-store', headers: authHeaders() });
    } catch (error) {
      throw new Error('the proxy is not answering: ' + error.message);
    }
    if (response.ok) return response.json();
    let message = '';
    try {
      const body = await response.json();
      message = (body && body.error && body.error.message) || '';
    } catch {
      // Not JSON: the status says it.
    }
    throw new Error('/carbon/stats answered ' + response.status + (message ? ': ' + message : ''));
  }

  async function loadPeriod() {
    const mine = generation;
    const period = periodOf(view, $('month').value);
    $('period-range').textContent = period.label;
    // Only the rows it shows: a month by user may be thousands of groups.
    const urls = GROUPS.map(([by]) => '/carbon/stats?from=' + period.from + '&to=' + period.to + '&by=' + by + '&top=' + TOP);
    const results = await Promise.allSettled(urls.map(report));
    if (mine !== generation) return;
    try {
      renderPeriod(period, urls, results);
    } finally {
      timer = setTimeout(loadPeriod, PERIOD_EVERY_MS);
    }
  }

  function renderPeriod(period, urls, results) {
    window.__carbonPeriod = { period, urls, reports: results.map((r) => (r.status === 'fulfilled' ? r.value : null)) };
    const failed = results[0].status === 'rejected' ? results[0].reason : null;
    $('period-error').hidden = !failed;
    for (const el of document.querySelectorAll('#period-view .period-body')) el.hidden = !!failed;
    const time = new Date().toLocaleTimeString();
    if (failed) {
      $('period-message').textContent = failed.message;
      $('updated').textContent = period.label + ' · not answered at ' + time + ' · tried again every 30 s';
      return;
    }
    const r = results[0].value, t = r.totals, idle = t.idle;

    big('p-emissions-requests', t.emissionsKgco2eq, one(grams(t.emissionsKgco2eq), 'g CO2eq'));
    set('p-requests', t.requests, count(t.requests));
    const eScale = scaleFor([grams(idle.idleEmissionsKgco2eq), grams(idle.unattributedEmissionsKgco2eq), grams(t.machineEmissionsKgco2eq)]);
    set('p-emissions-idle', idle.idleEmissionsKgco2eq, inUnit(grams(idle.idleEmissionsKgco2eq), eScale, 'g'));
    set('p-emissions-unattributed', idle.unattributedEmissionsKgco2eq, inUnit(grams(idle.unattributedEmissionsKgco2eq), eScale, 'g'));
    $('p-emissions-unattributed-row').hidden = !(idle.unattributedEmissionsKgco2eq > 0);
    set('p-emissions-total', t.machineEmissionsKgco2eq, inUnit(grams(t.machineEmissionsKgco2eq), eScale, 'g'));

    big('p-energy-requests', t.energyKwh, one(wh(t.energyKwh), 'Wh'));
    const share = t.machineEnergyKwh > 0 ? t.energyKwh / t.machineEnergyKwh : 0;
    set('p-energy-share', share, (100 * share).toFixed(1) + ' %');
    $('p-split-bar').innerHTML = '<div style="width:' + (100 * share).toFixed(2) + '%;background:var(--accent)"></div>';
    const jScale = scaleFor([wh(idle.idleEnergyKwh), wh(idle.unattributedEnergyKwh), wh(t.machineEnergyKwh)]);
    set('p-energy-idle', idle.idleEnergyKwh, inUnit(wh(idle.idleEnergyKwh), jScale, 'Wh'));
    set('p-energy-unattributed', idle.unattributedEnergyKwh, inUnit(wh(idle.unattributedEnergyKwh), jScale, 'Wh'));
    $('p-energy-unattributed-row').hidden = !(idle.unattributedEnergyKwh > 0);
    set('p-energy-total', t.machineEnergyKwh, inUnit(wh(t.machineEnergyKwh), jScale, 'Wh'));

    const measured = percent(t.measuredEnergyKwh, t.energyKwh);
    const mEl = $('p-measured-share');
    mEl.dataset.value = String(measured);
    mEl.innerHTML = measured == null ? '—' : esc(measured.toFixed(1)) + '<span class="unit">%</span>';
    set('p-requests-with-energy', t.requestsWithEnergy, count(t.requestsWithEnergy) + ' of ' + count(t.requests));
    set('p-measured-requests', t.measuredRequests, count(t.measuredRequests));
    set('p-prompt-tokens', t.promptTokens, count(t.promptTokens));
    set('p-completion-tokens', t.completionTokens, count(t.completionTokens));
    $('p-source').textContent = SOURCES[r.source] || r.source;

    GROUPS.forEach(([by, id, label, empty], i) => {
      const result = results[i];
      $(id).innerHTML = result.status === 'fulfilled' ? periodTable(result.value, by, label, empty) : '<div class="message">' + esc(result.reason.message) + '</div>';
    });
    $('updated').textContent = period.label + ' · updated ' + time + ' · refreshes every 30 s';
  }

  /** A report's rows, the 10 with the most CO2eq first: requests, energy, CO2eq, tokens, what was measured, the share. */
  function periodTable(rep, by, label, empty) {
    let rows = rep.rows.slice().sort((a, b) => b.emissionsKgco2eq - a.emissionsKgco2eq);
    if (rows.length === 0) return '<div class="empty">' + empty + '</div>';
    const more = Math.max(0, rows.length - TOP) + (rep.rowsOmitted || 0);
    rows = rows.slice(0, TOP);
    const eScale = scaleFor(rows.map((r) => wh(r.energyKwh)));
    const gScale = scaleFor(rows.map((r) => grams(r.emissionsKgco2eq)));
    const all = rep.totals.emissionsKgco2eq;
    const head = '<th>' + esc(label) + '</th><th>requests</th><th>energy</th><th>CO2eq</th><th>tokens in</th><th>tokens out</th><th>measured</th><th>share of CO2eq</th>';
    return '<table><thead><tr>' + head + '</tr></thead><tbody>' +
      rows.map((r) => {
        const name = r.group[by];
        const m = percent(r.measuredEnergyKwh, r.energyKwh);
        return '<tr data-group="' + esc(name == null ? '' : name) + '"' + (name == null ? ' data-none' : '') + '><td>' + (name == null ? '<span class="badge">none</span>' : esc(name)) +
          '</td><td data-value="' + r.requests + '">' + count(r.requests) +
          '</td><td data-value="' + r.energyKwh + '">' + esc(inUnit(wh(r.energyKwh), eScale, 'Wh')) +
          '</td><td data-value="' + r.emissionsKgco2eq + '">' + esc(inUnit(grams(r.emissionsKgco2eq), gScale, 'g')) +
          '</td><td data-value="' + r.promptTokens + '">' + count(r.promptTokens) +
          '</td><td data-value="' + r.completionTokens + '">' + count(r.completionTokens) +
          '</td><td data-value="' + m + '">' + showPercent(m) +
          '</td><td>' + showPercent(percent(r.emissionsKgco2eq, all)) + '</td></tr>';
      }).join('') +
      (more > 0 ? '<tr class="more"><td colspan="8" class="left">and ' + more + ' more (all of them: ' + esc('/carbon/stats?from=' + rep.from.slice(0, 10) + '&to=' + rep.to.slice(0, 10) + '&by=' + by) + ')</td></tr>' : '') + '</tbody></table>';
  }

  /** Shows the view named next ('live' or a period): the picker, the view, the address's #period=…, then its first read. */
  function choose(next) {
    view = PERIODS.includes(next) ? next : 'live';
    generation++;
    clearTimeout(timer);
    for (const b of document.querySelectorAll('.period button')) b.setAttribute('aria-pressed', String(b.dataset.period === view));
    $('month').hidden = view !== 'month';
    $('live').hidden = view !== 'live';
    $('period-view').hidden = view === 'live';
    if (view === 'live') $('period-range').textContent = '';
    const hash = view === 'live' ? '' : '#period=' + view + (view === 'month' ? '&month=' + $('month').value : '');
    if (typeof history !== 'undefined' && location.hash !== hash) history.replaceState(null, '', location.pathname + location.search + hash);
    if (view === 'live') refresh();
    else {
      $('updated').textContent = 'reading ' + periodOf(view, $('month').value).label + '…';
      loadPeriod();
      // Opened on a period: the header is read once, without the live tables.
      if (!headerRead) {
        headerRead = true;
        fetch('/carbon/stats?top=0&recent=0', { cache: 'no-store', headers: authHeaders() })
          .then((response) => (response.ok ? response.json().then(renderHeader) : undefined))
          .catch(() => {});
      }
    }
  }
  let headerRead = false;

  for (const b of document.querySelectorAll('.period button')) b.addEventListener('click', () => choose(b.dataset.period));
  $('month').addEventListener('change', () => choose('month'));
  // A link can name a period: /carbon#period=month&month=2026-11 (the token, if any, stays in ?token=).
  const asked = new URLSearchParams(location.hash.slice(1));
  $('month').value = /^[0-9]{4}-[0-9]{2}$/.test(asked.get('month') || '') ? asked.get('month') : thisMonth();
  choose(asked.get('period') || 'live');
})();
</script>
</body>
</html>
`;
