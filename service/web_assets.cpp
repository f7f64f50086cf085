#include "service/web_assets.h"

namespace stemsphere::service {
namespace {

// System fonts only; readable at 320 px wide; focus always visible; colours meet WCAG AA.
constexpr std::string_view kCss = R"CSS(
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1b1d21; background: #f6f7f9; }
a { color: #0b57b0; }
a:hover { color: #073f80; }
:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem;
             padding: .75rem 1rem; background: #152238; color: #fff; }
header.top a, header.top button.link { color: #fff; }
.brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; letter-spacing: .02em; }
nav { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; }
main { max-width: 56rem; margin: 0 auto; padding: 1rem; }
main:focus { outline: none; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
p, h1, h2, dd, li { overflow-wrap: anywhere; }  /* long names and codes never widen the page */
h2 { font-size: 1.25rem; margin: 0 0 .75rem; }
section.card, .card { background: #fff; border: 1px solid #d9dde3; border-radius: 8px; padding: 1rem;
                      margin: 0 0 1rem; }
.narrow { max-width: 28rem; }
.field { margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
.hint { margin: 0 0 .25rem; color: #4a5260; font-size: .9rem; }
input[type=text], input[type=email], input[type=password], select {
  width: 100%; max-width: 26rem; font: inherit; padding: .55rem .6rem; border: 2px solid #6b7280;
  border-radius: 6px; background: #fff; }
.has-error input { border-color: #b3261e; }
.field-error { color: #b3261e; font-weight: 600; margin: 0 0 .25rem; }
.error-summary { border: 3px solid #b3261e; border-radius: 8px; background: #fff; padding: .75rem 1rem;
                 margin-bottom: 1rem; }
.error-summary h2 { color: #b3261e; font-size: 1.1rem; }
.error-summary ul { margin: 0; padding-left: 1.2rem; }
.notice { border-left: 6px solid #1f7a3a; background: #fff; padding: .75rem 1rem; margin-bottom: 1rem; }
.warning { border-left: 6px solid #b3261e; background: #fff; padding: .75rem 1rem; margin-bottom: 1rem; }
button, .button { font: inherit; font-weight: 600; padding: .55rem 1.1rem; border-radius: 6px;
                  border: 2px solid #0b57b0; background: #0b57b0; color: #fff; cursor: pointer;
                  display: inline-block; text-decoration: none; min-height: 44px; }
button.secondary, .button.secondary { background: #fff; color: #0b57b0; }
button.danger { background: #b3261e; border-color: #b3261e; }
button.link { background: none; border: none; padding: 0; min-height: 0; text-decoration: underline;
              font-weight: 400; color: #0b57b0; }
form.inline { display: inline; margin: 0; }
.actions { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin-top: .5rem; }
.big { font-size: 2rem; font-weight: 700; margin: 0; }
.muted { color: #4a5260; }
.code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 1.5rem; letter-spacing: .1em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
svg.chart { width: 100%; height: auto; max-height: 260px; display: block; }
svg.chart .bar { fill: #0b57b0; }
svg.chart .bar:hover { fill: #f0a500; }
svg.chart .grid { stroke: #e3e6ea; stroke-width: 1; }
svg.chart .baseline { stroke: #6b7280; stroke-width: 1; }
svg.chart .axis { fill: #4a5260; font-size: 11px; }
svg.qr { width: 220px; height: 220px; display: block; margin: .5rem 0; }
ol.codes { columns: 2; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 1.1rem; }
footer { max-width: 56rem; margin: 0 auto; padding: 1rem; color: #4a5260; font-size: .9rem; }
@media (max-width: 30rem) {
  main { padding: .75rem; }
  h1 { font-size: 1.35rem; }
  ol.codes { columns: 1; }
  table.stack thead { position: absolute; left: -999px; }
  table.stack tr { display: block; border-bottom: 1px solid #d9dde3; padding: .25rem 0; }
  table.stack td { display: block; border: none; padding: .15rem 0; overflow-wrap: anywhere; }
  table.stack td[data-label]::before { content: attr(data-label) ": "; font-weight: 600; }
  td.num { text-align: left; }
}
)CSS";

// Progressive help only; every form works without it. Moves focus to the error summary, tidies
// a typed user code (any case, optional dash) and asks before irreversible buttons.
constexpr std::string_view kJs = R"JS('use strict';
document.addEventListener('DOMContentLoaded', function () {
  var summary = document.querySelector('.error-summary');
  if (summary) summary.focus();
  var code = document.getElementById('f-user_code');
  if (code) {
    code.addEventListener('input', function () {
      var v = code.value.toUpperCase().replace(/[^A-Z]/g, '').slice(0, 8);
      code.value = v.length > 4 ? v.slice(0, 4) + '-' + v.slice(4) : v;
    });
  }
  document.querySelectorAll('[data-confirm]').forEach(function (button) {
    button.addEventListener('click', function (event) {
      if (!window.confirm(button.getAttribute('data-confirm'))) event.preventDefault();
    });
  });
});
)JS";

constexpr std::string_view kIcon =
    R"SVG(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="#152238"/><circle cx="16" cy="16" r="8" fill="none" stroke="#f0a500" stroke-width="3"/><circle cx="16" cy="16" r="2.5" fill="#fff"/></svg>)SVG";

const WebAsset kAssets[] = {
    {"/static/site.css", "text/css; charset=utf-8", kCss},
    {"/static/app.js", "text/javascript; charset=utf-8", kJs},
    {"/static/icon.svg", "image/svg+xml", kIcon},
};

}  // namespace

const WebAsset* web_assets_begin() {
    return kAssets;
}
const WebAsset* web_assets_end() {
    return kAssets + sizeof(kAssets) / sizeof(kAssets[0]);
}

}  // namespace stemsphere::service
