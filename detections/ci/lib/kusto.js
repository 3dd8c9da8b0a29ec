'use strict';
// Microsoft's Kusto language library (the C# Kusto.Language compiled to
// JavaScript, npm @kusto/language-service-next): parser, binder and
// semantic analyser. This file loads it and builds the global state the
// rules are analysed against: the harvester's tables (from
// internal/tables, via `go run ./detections/ci/schema`), the columns Log
// Analytics adds to every custom table, and Sentinel's _GetWatchlist().

let K = null;

function load() {
  if (K) return K;
  global.Bridge = require('@kusto/language-service-next/bridge.js');
  require('@kusto/language-service-next/Kusto.Language.Bridge.js');
  K = global.Kusto.Language;
  return K;
}

// Columns Log Analytics adds to every custom (_CL) table.
const LA_STANDARD = [
  ['TenantId', 'string'],
  ['Type', 'string'],
  ['_ResourceId', 'string'],
  ['_SubscriptionId', 'string'],
  ['_ItemId', 'string'],
  ['_TimeReceived', 'datetime'],
  ['_IsBillable', 'string'],
  ['_BilledSize', 'real'],
];

// Sentinel's watchlist function: the fixed columns every watchlist has
// (the watchlist's own columns are also in WatchlistItem).
const WATCHLIST_COLUMNS = [
  ['_DTItemId', 'string'],
  ['LastUpdatedTimeUTC', 'datetime'],
  ['SearchKey', 'string'],
  ['WatchlistItem', 'dynamic'],
];

function kustoType(t) {
  switch (t) {
    case 'boolean': return 'bool';
    case 'int': case 'long': case 'real': case 'string': case 'datetime': case 'dynamic': case 'timespan': case 'guid': case 'decimal':
      return t;
    default:
      throw new Error(`unknown column type ${t}`);
  }
}

function quoteName(n) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(n) ? n : `['${n}']`;
}

// schema: [{name, workspace, columns: [{name, type, field?}]}]
// Returns {globals, tables: Map(workspaceName -> [{name, type, field}])}.
function buildGlobals(schema) {
  const Kl = load();
  const S = Kl.Symbols;
  const members = [];
  const tables = new Map();
  for (const t of schema) {
    const cols = t.columns.map((c) => ({ name: c.name, type: kustoType(c.type), field: c.field || '' }));
    for (const [n, ty] of LA_STANDARD) {
      if (!cols.some((c) => c.name === n)) cols.push({ name: n, type: ty, field: '', standard: true });
    }
    tables.set(t.workspace, cols);
    const decl = '(' + cols.map((c) => `${quoteName(c.name)}:${c.type}`).join(', ') + ')';
    members.push(new S.TableSymbol.$ctor7(t.workspace, decl, null));
  }
  const wlDecl = WATCHLIST_COLUMNS.map(([n, ty]) => `${n}:${ty}`).join(', ');
  // FunctionSymbol(name, parameterList, body, description)
  members.push(new S.FunctionSymbol.$ctor16('_GetWatchlist', '(watchlistAlias:string)', `{ datatable(${wlDecl})[] }`, null));
  const db = new S.DatabaseSymbol.ctor('db', members);
  return { globals: Kl.GlobalState.Default.WithDatabase(db), tables };
}

// Parse and analyse text; returns {code, diagnostics: [{severity, code, start, line, col, message}]}.
function analyze(text, globals) {
  const Kl = load();
  const code = Kl.KustoCode.ParseAndAnalyze(text, globals);
  const ds = code.GetDiagnostics();
  const out = [];
  for (let i = 0; i < ds.Count; i++) {
    const d = ds.getItem(i);
    const sev = Kl.DiagnosticSeverity;
    let severity = 'error';
    if (d.Severity === sev.Warning || d.Severity === 'Warning') severity = 'warning';
    else if (d.Severity === sev.Suggestion || d.Severity === 'Suggestion') severity = 'suggestion';
    else if (d.Severity === sev.Information || d.Severity === 'Information') severity = 'information';
    const before = text.slice(0, d.Start);
    const line = before.split('\n').length;
    const col = d.Start - before.lastIndexOf('\n');
    out.push({ severity, code: d.Code, start: d.Start, line, col, message: d.Message });
  }
  return { code, diagnostics: out };
}

module.exports = { load, buildGlobals, analyze, LA_STANDARD, WATCHLIST_COLUMNS };
