/**
 * The proxy's live dashboard: one self-contained page (no CDN, no build step — the GPU box may be
 * offline) that polls `/carbon/stats` every second and draws power now, energy per request, totals
 * per model, attributed versus idle energy, and what is measured versus estimated. Every number
 * it shows carries its raw value in `data-value`, so a test can hold the page to the JSON.
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
  :root { --bg: #0f1412; --panel: #17201c; --line: #26332d; --text: #e4ece7; --muted: #8fa39a; --cpu: #5fb3f9; --gpu: #f2a541; --ram: #a98ff5; --idle: #3d4a44; --accent: #4cd39b; }
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
</style>
</head>
<body>
<header>
  <h1>carbon-trace <span>proxy</span></h1>
  <div class="meta" id="upstream">connecting…</div>
  <div class="meta" id="meter"></div>
  <div class="meta" id="grid"></div>
</header>
<main>
  <section>
    <h2>Power now</h2>
    <div class="big" id="power-total" data-value="0">—</div>
    <div id="power"></div>
  </section>
  <section>
    <h2>Energy since start</h2>
    <div class="big" id="energy-total" data-value="0">—</div>
    <div class="bar" id="split-bar"></div>
    <div class="row"><span><span class="swatch" style="background:var(--accent)"></span>attributed to requests</span><span id="energy-attributed" data-value="0">—</span></div>
    <div class="row"><span><span class="swatch" style="background:var(--idle)"></span>idle</span><span id="energy-idle" data-value="0">—</span></div>
  </section>
  <section>
    <h2>Emissions since start</h2>
    <div class="big" id="emissions-total" data-value="0">—</div>
    <div class="row"><span>attributed to requests</span><span id="emissions-attributed" data-value="0">—</span></div>
    <div class="row"><span>requests</span><span id="requests" data-value="0">—</span></div>
    <div class="row"><span>in flight</span><span id="active" data-value="0">—</span></div>
  </section>
  <section>
    <h2>Last request</h2>
    <div class="big" id="last-energy" data-value="0">—</div>
    <div class="row"><span>CO2eq</span><span id="last-emissions" data-value="0">—</span></div>
    <div class="row"><span>duration</span><span id="last-duration" data-value="0">—</span></div>
    <div class="row"><span id="last-model">—</span><span id="last-method">—</span></div>
  </section>
  <section class="wide">
    <h2>Energy per request — most recent last</h2>
    <div id="chart"></div>
    <div class="legend" id="legend"></div>
  </section>
  <section class="wide">
    <h2>Per model</h2>
    <div id="models"></div>
  </section>
</main>
<footer id="updated">waiting for /carbon/stats…</footer>
<script>
(() => {
  const COMPONENTS = ['cpu', 'gpu', 'ram'];
  const $ = (id) => document.getElementById(id);
  const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const prefix = (value, unit) => {
    if (!Number.isFinite(value) || value === 0) return '0 ' + unit;
    const steps = [[1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n']];
    const [scale, p] = steps.find(([s]) => Math.abs(value) >= s) || steps[steps.length - 1];
    return (value / scale).toPrecision(3) + ' ' + p + unit;
  };
  const wh = (joules) => prefix(joules / 3600, 'Wh');
  const grams = (g) => prefix(g, 'g');
  const watts = (w) => prefix(w, 'W');
  const set = (id, value, text) => { const el = $(id); el.dataset.value = String(value); el.textContent = text; };

  function render(s) {
    window.__carbonStats = s;
    $('upstream').textContent = '→ ' + s.upstream;
    $('meter').textContent = s.meter;
    $('grid').textContent = s.grid.gCo2PerKwh + ' gCO2eq/kWh (' + s.grid.source + ')';

    const power = s.powerWatts || {};
    const powerTotal = COMPONENTS.reduce((sum, c) => sum + (power[c] || 0), 0);
    set('power-total', powerTotal, '');
    $('power-total').innerHTML = esc(watts(powerTotal).replace(/ \\S+$/, '')) + '<span class="unit">' + esc(watts(powerTotal).split(' ')[1]) + '</span>';
    $('power').innerHTML = COMPONENTS.filter((c) => s.byComponent[c]).map((c) => {
      const comp = s.byComponent[c];
      return '<div class="row"><span><span class="swatch" style="background:var(--' + c + ')"></span>' + c.toUpperCase() +
        '<span class="badge ' + (comp.measured ? 'measured' : '') + '">' + (comp.measured ? 'measured' : 'estimated') + '</span></span>' +
        '<span data-component="' + c + '" data-value="' + (power[c] || 0) + '">' + esc(watts(power[c] || 0)) + '</span></div>';
    }).join('') || '<div class="empty">no energy source</div>';

    set('energy-total', s.totalJoules, wh(s.totalJoules));
    set('energy-attributed', s.attributedJoules, wh(s.attributedJoules));
    set('energy-idle', s.idleJoules, wh(s.idleJoules));
    const share = s.totalJoules > 0 ? (100 * s.attributedJoules) / s.totalJoules : 0;
    $('split-bar').innerHTML = '<div style="width:' + share.toFixed(2) + '%;background:var(--accent)"></div>';
    set('emissions-total', s.emissionsGrams.total, grams(s.emissionsGrams.total));
    set('emissions-attributed', s.emissionsGrams.attributed, grams(s.emissionsGrams.attributed));
    set('requests', s.requests, String(s.requests));
    set('active', s.activeRequests, String(s.activeRequests));

    const last = s.recent[s.recent.length - 1];
    if (last) {
      set('last-energy', last.totalJoules, wh(last.totalJoules));
      set('last-emissions', last.emissionsGrams, grams(last.emissionsGrams));
      set('last-duration', last.durationSeconds, last.durationSeconds.toFixed(2) + ' s' + (last.completionTokens != null ? ' · ' + last.completionTokens + ' tokens' : ''));
      $('last-model').textContent = last.model || 'unknown model';
      $('last-method').innerHTML = '<span class="badge ' + (last.measured ? 'measured' : '') + '">' + (last.measured ? 'measured' : 'estimated') + '</span>';
    }
    $('legend').innerHTML = COMPONENTS.filter((c) => s.byComponent[c]).map((c) => '<span><span class="swatch" style="background:var(--' + c + ')"></span>' + c.toUpperCase() + '</span>').join('');
    renderChart(s.recent);
    renderModels(s);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString() + ' · since ' + new Date(s.since).toLocaleString() + ' · refreshes every second';
  }

  function renderChart(recent) {
    if (recent.length === 0) { $('chart').innerHTML = '<div class="empty">no request yet — send a chat completion through the proxy</div>'; return; }
    const width = Math.max(320, $('chart').clientWidth || 900), height = 180, left = 56, bottom = 20;
    const max = Math.max(...recent.map((r) => r.totalJoules), 1e-12);
    const slot = (width - left) / Math.max(recent.length, 20);
    const bars = recent.map((r, i) => {
      let y = height - bottom;
      const x = left + i * slot + slot * 0.15;
      const parts = COMPONENTS.filter((c) => r.joules[c] > 0).map((c) => {
        const h = ((r.joules[c] / max) * (height - bottom - 10));
        y -= h;
        return '<rect x="' + x.toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + (slot * 0.7).toFixed(1) + '" height="' + h.toFixed(1) + '" fill="var(--' + c + ')"></rect>';
      }).join('');
      const title = (r.model || 'unknown model') + ': ' + wh(r.totalJoules) + ', ' + grams(r.emissionsGrams) + ' in ' + r.durationSeconds.toFixed(2) + ' s' + (r.completionTokens != null ? ', ' + r.completionTokens + ' tokens' : '') + (r.measured ? ' (measured)' : ' (estimated)');
      return '<g class="request" data-value="' + r.totalJoules + '"><title>' + esc(title) + '</title>' + parts + '</g>';
    }).join('');
    const axis = '<text x="0" y="14">' + esc(wh(max)) + '</text><text x="0" y="' + (height - bottom) + '">0</text>' +
      '<line x1="' + left + '" x2="' + width + '" y1="' + (height - bottom) + '" y2="' + (height - bottom) + '" stroke="var(--line)"></line>';
    $('chart').innerHTML = '<svg width="100%" viewBox="0 0 ' + width + ' ' + height + '" role="img" aria-label="energy per request">' + axis + bars + '</svg>';
  }

  function renderModels(s) {
    const models = Object.entries(s.byModel);
    if (models.length === 0) { $('models').innerHTML = '<div class="empty">no model called yet</div>'; return; }
    const g = (joules) => (joules / 3.6e6) * s.grid.gCo2PerKwh;
    $('models').innerHTML = '<table><thead><tr><th>model</th><th>requests</th><th>energy</th><th>CO2eq</th><th>per request</th></tr></thead><tbody>' +
      models.map(([name, m]) => '<tr data-model="' + esc(name) + '"><td>' + esc(name) + '</td><td data-value="' + m.requests + '">' + m.requests +
        '</td><td data-value="' + m.joules + '">' + esc(wh(m.joules)) + '</td><td data-value="' + g(m.joules) + '">' + esc(grams(g(m.joules))) +
        '</td><td>' + esc(wh(m.requests > 0 ? m.joules / m.requests : 0)) + '</td></tr>').join('') + '</tbody></table>';
  }

  async function refresh() {
    try {
      const response = await fetch('/carbon/stats', { cache: 'no-store' });
      if (response.ok) render(await response.json());
      else $('updated').textContent = '/carbon/stats answered ' + response.status;
    } catch (error) {
      $('updated').textContent = 'the proxy is not answering: ' + error.message;
    } finally {
      setTimeout(refresh, 1000);
    }
  }
  refresh();
})();
</script>
</body>
</html>
`;
