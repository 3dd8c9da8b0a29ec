'use strict';
// SPL STRUCTURAL LINT. This is not a parser and not validation by Splunk:
// no SPL engine or SPL parser can be installed on this project's machines
// (see ../README.md). It checks what can be checked without Splunk's own
// grammar (searchbnf): quotes, brackets and parentheses balance; every
// pipeline stage starts with a command from Splunk's search reference;
// a leading `|` is followed by a generating command; subsearches are linted
// the same way; stats-family aggregations and eval/where functions are
// known names; a few command shapes (eval assignments, bin's field,
// inputlookup's file, rename's AS, lowercase boolean operators in a search).
// A query that passes can still be rejected by Splunk.

const COMMANDS = new Set(`abstract accum addcoltotals addinfo addtotals analyzefields anomalies anomalousvalue anomalydetection
append appendcols appendpipe arules associate audit autoregress bin bucket bucketdir chart cluster cofilter collect concurrency
contingency convert correlate datamodel dbinspect dedup delete delta diff erex eval eventcount eventstats extract kv fieldformat
fields fieldsummary filldown fillnull findtypes folderize foreach format from gauge gentimes geom geomfilter geostats head
highlight history iconify inputcsv inputlookup iplocation join kmeans kvform loadjob localize localop lookup makecontinuous
makemv makeresults map mcollect metadata metasearch meventcollect mpreview msearch mstats multikv multisearch mvcombine mvexpand
nomv outlier outputcsv outputlookup outputtext overlap pivot predict rangemap rare redistribute regex reltime rename replace
require rest return reverse rex rtorder savedsearch script run scrub search searchtxn selfjoin sendalert sendemail set setfields
sichart sirare sistats sitimechart sitop sort spath stats strcat streamstats table tags tail timechart timewrap tojson top
transaction transpose trendline tscollect tstats typeahead typelearner typer union uniq untable walklex where x11 xmlkv
xmlunescape xpath xyseries`.split(/\s+/).filter(Boolean));

// Commands that can start a search after a leading `|`.
const GENERATING = new Set(`datamodel dbinspect eventcount from gentimes inputcsv inputlookup loadjob makeresults metadata
metasearch mpreview msearch mstats multisearch pivot rest savedsearch search searchtxn set tstats union walklex`.split(/\s+/).filter(Boolean));

const STATS_FUNCS = new Set(`avg c count dc distinct_count estdc estdc_error exactperc first last earliest earliest_time latest
latest_time list max mean median min mode range rate rate_avg rate_sum stdev stdevp sum sumsq upperperc values var varp
per_day per_hour per_minute per_second sparkline`.split(/\s+/).filter(Boolean));
const STATS_FUNC_RE = /^(perc|p|exactperc|upperperc)\d{1,2}(\.\d+)?$/;

const EVAL_FUNCS = new Set(`abs acos acosh asin asinh atan atan2 atanh avg bitand bitnot bitor bitxor case cidrmatch ceiling ceil
coalesce commands cos cosh exact exp false floor hypot if in ipmask isbool isint isnotnull isnull isnum isstr json_append
json_array json_array_to_mv json_delete json_entries json_extend json_extract json_extract_exact json_has_key_exact json_keys
json_object json_set json_set_exact json_valid len like ln log lookup lower ltrim match max md5 min mvappend mvcount mvdedup
mvfilter mvfind mvindex mvjoin mvmap mvrange mvsort mvzip mv_to_json_array now null nullif pi pow printf random relative_time
replace round rtrim searchmatch sha1 sha256 sha512 sigfig sin sinh spath split sqrt strftime strptime substr sum tan tanh time
tonumber tostring trim true typeof upper urldecode validate`.split(/\s+/).filter(Boolean));

const STATS_COMMANDS = new Set(['stats', 'eventstats', 'streamstats', 'tstats', 'chart', 'timechart', 'sistats', 'mstats', 'geostats', 'sichart', 'sitimechart']);
const EXPR_COMMANDS = new Set(['eval', 'where', 'fieldformat']);

// Split text at top-level separators; track quotes, [] and (); report imbalance.
function scan(text, offset, problems) {
  const stages = [];
  const subs = [];
  let depthParen = 0;
  let start = 0;
  const stack = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"' || ch === "'" || ch === '`') {
      const q = ch;
      let j = i + 1;
      while (j < text.length && text[j] !== q) { if (text[j] === '\\') j++; j++; }
      if (j >= text.length) {
        problems.push(`unterminated ${q === '`' ? 'macro (backtick)' : 'quote ' + q} at ${offset + i}`);
        return { stages: [], subs: [] };
      }
      i = j + 1;
      continue;
    }
    if (ch === '[') { stack.push(['[', i]); i++; continue; }
    if (ch === ']') {
      const top = stack.pop();
      if (!top || top[0] !== '[') { problems.push(`unbalanced ] at ${offset + i}`); return { stages: [], subs: [] }; }
      if (!stack.some((s) => s[0] === '[')) subs.push({ text: text.slice(top[1] + 1, i), offset: offset + top[1] + 1 });
      i++;
      continue;
    }
    if (ch === '(') { stack.push(['(', i]); depthParen++; i++; continue; }
    if (ch === ')') {
      const top = stack.pop();
      if (!top || top[0] !== '(') { problems.push(`unbalanced ) at ${offset + i}`); return { stages: [], subs: [] }; }
      depthParen--;
      i++;
      continue;
    }
    if (ch === '|' && stack.length === 0) {
      stages.push({ text: text.slice(start, i), offset: offset + start });
      start = i + 1;
    }
    i++;
  }
  if (stack.length) {
    const [b, at] = stack[stack.length - 1];
    problems.push(`unclosed ${b} at ${offset + at}`);
    return { stages: [], subs: [] };
  }
  stages.push({ text: text.slice(start), offset: offset + start });
  return { stages, subs };
}

// Blank out quoted strings and bracketed subsearches (same length), so the
// simple checks below do not look inside them.
function mask(text) {
  let out = '';
  let i = 0;
  let depth = 0;
  while (i < text.length) {
    const ch = text[i];
    if ((ch === '"' || ch === "'" || ch === '`') && depth === 0) {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) { if (text[j] === '\\') j++; j++; }
      out += ch + ' '.repeat(Math.max(0, Math.min(j, text.length - 1) - i - 1)) + ch;
      i = j + 1;
      continue;
    }
    if (ch === '[') { depth++; out += depth === 1 ? '[' : ' '; i++; continue; }
    if (ch === ']') { out += depth === 1 ? ']' : ' '; depth--; i++; continue; }
    out += depth > 0 ? (ch === '\n' ? '\n' : ' ') : ch;
    i++;
  }
  return out;
}

function lintQuery(text, offset, problems, isSub) {
  const { stages, subs } = scan(text, offset, problems);
  if (!stages.length) return;
  const first = stages[0].text.trim();
  let rest = stages;
  if (first === '') {
    // leading | : the next stage must be a generating command
    if (stages.length < 2) { problems.push(`empty search at ${offset}`); return; }
    const cmd = (stages[1].text.trim().match(/^[A-Za-z_][A-Za-z0-9_]*/) || [''])[0].toLowerCase();
    if (!GENERATING.has(cmd)) problems.push(`a leading | must be followed by a generating command (inputlookup, makeresults, tstats, rest, …), not '${cmd || stages[1].text.trim().slice(0, 20)}' at ${stages[1].offset}`);
    rest = stages.slice(1);
  } else {
    lintSearch(stages[0].text, stages[0].offset, problems);
    rest = stages.slice(1);
  }
  for (const st of rest) lintStage(st, problems);
  for (const s of subs) {
    if (s.text.trim() === '') { problems.push(`empty subsearch at ${s.offset}`); continue; }
    lintQuery(s.text, s.offset, problems, true);
  }
  void isSub;
}

function lintSearch(text, offset, problems) {
  const m = mask(text);
  // lowercase boolean operators are search terms in SPL, not operators
  const re = /(^|[\s(])(and|or|not)(?=[\s(])/g;
  let x;
  while ((x = re.exec(m)) !== null) {
    problems.push(`'${x[2]}' in a search is a search term, not the ${x[2].toUpperCase()} operator (write ${x[2].toUpperCase()}) at ${offset + x.index + x[1].length}`);
  }
  const inRe = /\bIN\b(?!\s*\()/g;
  while ((x = inRe.exec(m)) !== null) problems.push(`IN must be followed by a parenthesised value list at ${offset + x.index}`);
  const dangling = /(^|[^!<>=])=\s*(\||$|\)|\bAND\b|\bOR\b|\bNOT\b)/g;
  while ((x = dangling.exec(m)) !== null) problems.push(`'=' without a value at ${offset + x.index + x[1].length}`);
}

function lintStage(st, problems) {
  const body = st.text.trim();
  const at = st.offset + (st.text.length - st.text.trimStart().length);
  if (body === '') { problems.push(`empty pipeline stage at ${st.offset}`); return; }
  if (body.startsWith('`')) return; // a macro: its expansion lives in Splunk
  const cm = body.match(/^[A-Za-z_][A-Za-z0-9_]*/);
  if (!cm) { problems.push(`pipeline stage does not start with a command: '${body.slice(0, 30)}' at ${at}`); return; }
  const cmd = cm[0].toLowerCase();
  if (!COMMANDS.has(cmd)) { problems.push(`unknown command '${cm[0]}' at ${at}`); return; }
  const args = body.slice(cm[0].length);
  const margs = mask(args);
  const argAt = at + cm[0].length;
  if (cmd === 'search') lintSearch(args, argAt, problems);
  if (STATS_COMMANDS.has(cmd)) lintStats(cmd, margs, argAt, problems);
  if (EXPR_COMMANDS.has(cmd)) {
    if (margs.trim() === '') problems.push(`${cmd} without an expression at ${at}`);
    lintFunctions(margs, argAt, problems);
    if (cmd === 'eval' || cmd === 'fieldformat') {
      for (const part of splitTop(margs, ',')) {
        if (!/^\s*[A-Za-z_'"][^=]*?\s*=(?!=)/.test(part.text)) problems.push(`${cmd}: expected field=expression, got '${part.text.trim().slice(0, 30)}' at ${argAt + part.offset}`);
      }
    }
  }
  if (cmd === 'bin' || cmd === 'bucket') {
    const words = margs.trim().split(/\s+/).filter((w) => w && !/^[A-Za-z_]+=/.test(w));
    if (!words.length) problems.push(`${cmd} needs a field at ${at}`);
    for (const m of margs.matchAll(/\b([A-Za-z_]+)=/g)) {
      if (!['span', 'bins', 'minspan', 'start', 'end', 'aligntime'].includes(m[1])) problems.push(`${cmd}: unknown option ${m[1]}= at ${argAt + m.index}`);
    }
  }
  if (cmd === 'inputlookup' || cmd === 'lookup' || cmd === 'outputlookup') {
    const words = args.trim().split(/\s+/).filter((w) => w && !/^[A-Za-z_]+=/.test(w));
    if (!words.length) problems.push(`${cmd} needs a lookup name at ${at}`);
  }
  if (cmd === 'rename') {
    for (const part of splitTop(margs, ',')) {
      if (!/\s(AS|as)\s/.test(` ${part.text} `)) problems.push(`rename: expected 'old AS new', got '${part.text.trim().slice(0, 30)}' at ${argAt + part.offset}`);
    }
  }
  if ((cmd === 'fields' || cmd === 'table' || cmd === 'dedup' || cmd === 'mvexpand') && margs.trim().replace(/^[+-]/, '').trim() === '') {
    problems.push(`${cmd} needs field names at ${at}`);
  }
  if ((cmd === 'join' || cmd === 'append' || cmd === 'appendcols' || cmd === 'appendpipe') && !/\[/.test(margs)) {
    problems.push(`${cmd} needs a [subsearch] at ${at}`);
  }
}

function splitTop(text, sep) {
  const out = [];
  let depth = 0; let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === sep && depth === 0) { out.push({ text: text.slice(start, i), offset: start }); start = i + 1; }
  }
  out.push({ text: text.slice(start), offset: start });
  return out.filter((p) => p.text.trim() !== '');
}

function lintFunctions(masked, at, problems) {
  for (const m of masked.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)) {
    const name = m[1];
    if (/^(AND|OR|NOT|XOR|IN|LIKE)$/i.test(name)) continue;
    if (!EVAL_FUNCS.has(name)) problems.push(`unknown eval function ${name}() at ${at + m.index}`);
  }
}

function lintStats(cmd, masked, at, problems) {
  let s = masked;
  const byIdx = s.search(/\s(by|BY|By)\s/);
  let byPart = null;
  if (byIdx !== -1) { byPart = s.slice(byIdx + 4); s = s.slice(0, byIdx); }
  if (byPart !== null && byPart.trim() === '') problems.push(`${cmd}: 'by' without fields at ${at + byIdx}`);
  if (cmd === 'tstats' || cmd === 'mstats' || cmd === 'geostats') return; // own option grammar
  // drop options like allnum=true, span=1h, and 'as name' renames
  const calls = [...s.matchAll(/([A-Za-z_][A-Za-z0-9_.]*)\s*\(/g)];
  for (const m of calls) {
    const name = m[1];
    if (name === 'eval') continue;
    if (!STATS_FUNCS.has(name) && !STATS_FUNC_RE.test(name)) problems.push(`${cmd}: unknown aggregation ${name}() at ${at + m.index}`);
  }
  let bare = s;
  for (let prev = ''; prev !== bare;) { prev = bare; bare = bare.replace(/\([^()]*\)/g, ' '); }
  bare = bare.replace(/\b[A-Za-z_]+=\S+/g, ' ').replace(/\b(as|AS|As)\s+\S+/g, ' ');
  const called = new Set(calls.map((m) => m[1]));
  const words = bare.split(/[\s,]+/).filter((w) => w && !called.has(w));
  if (!calls.length && !words.length) problems.push(`${cmd} without an aggregation at ${at}`);
  for (const w of words) {
    if (cmd === 'timechart' || cmd === 'chart' || cmd === 'sichart' || cmd === 'sitimechart') continue; // over/where clauses
    if (!STATS_FUNCS.has(w) && !STATS_FUNC_RE.test(w)) problems.push(`${cmd}: '${w}' is not an aggregation (missing parentheses or 'by'?) at ${at + s.indexOf(w)}`);
  }
}

// Returns {problems: [string], lookups: [string]} — lookups named by inputlookup/lookup.
function lint(text) {
  const problems = [];
  const t = text.replace(/\r\n/g, '\n');
  // comments: ``` ... ``` (Splunk 8.1+)
  const noComments = t.replace(/```[\s\S]*?```/g, (c) => ' '.repeat(c.length));
  if (noComments.trim() === '') return { problems: ['empty query'], lookups: [] };
  lintQuery(noComments, 0, problems, false);
  const lookups = [...noComments.matchAll(/\|\s*(?:inputlookup|lookup)\s+(?:[A-Za-z_]+=\S+\s+)*([^\s|\]]+)/g)].map((m) => m[1]);
  return { problems, lookups };
}

module.exports = { lint, COMMANDS, GENERATING, STATS_FUNCS, EVAL_FUNCS };
