// Herald's APPSYNC_JS environment, evaluated once per runtime before the
// namespace's handler module. `util` follows AppSync's util (the parts Events
// handlers use); `import { util } from '@aws-appsync/utils'` resolves to it.
(function () {
  'use strict';
  const fail = (kind, message, errorType) => {
    const e = new Error(message);
    e.__herald = kind;
    e.errorType = errorType;
    return e;
  };
  const pad = (n, w) => String(n).padStart(w || 2, '0');
  const time = {
    nowISO8601: () => new Date().toISOString(),
    nowEpochSeconds: () => Math.floor(Date.now() / 1000),
    nowEpochMilliSeconds: () => Date.now(),
    nowFormatted: (format) => {
      const d = new Date();
      return String(format || "yyyy-MM-dd'T'HH:mm:ss'Z'")
        .replace(/yyyy/g, d.getUTCFullYear()).replace(/MM/g, pad(d.getUTCMonth() + 1))
        .replace(/dd/g, pad(d.getUTCDate())).replace(/HH/g, pad(d.getUTCHours()))
        .replace(/mm/g, pad(d.getUTCMinutes())).replace(/ss/g, pad(d.getUTCSeconds()))
        .replace(/SSS/g, pad(d.getUTCMilliseconds(), 3)).replace(/'/g, '');
    },
    parseISO8601ToEpochMilliSeconds: (s) => Date.parse(s),
    epochMilliSecondsToSeconds: (ms) => Math.floor(ms / 1000),
    epochMilliSecondsToISO8601: (ms) => new Date(ms).toISOString(),
    epochSecondsToISO8601: (s) => new Date(s * 1000).toISOString(),
  };
  const util = {
    error: (message, errorType, data, errorInfo) => { throw fail('error', String(message), errorType); },
    unauthorized: () => { throw fail('unauthorized', 'Unauthorized'); },
    appendError: (message, errorType) => { __herald_log('warn', 'util.appendError: ' + message); },
    autoId: () => __herald_uuid(),
    autoUlid: () => __herald_ulid(),
    autoKsuid: () => __herald_ulid(),
    base64Encode: (s) => __herald_b64(String(s), true),
    base64Decode: (s) => __herald_b64(String(s), false),
    urlEncode: (s) => encodeURIComponent(String(s)),
    urlDecode: (s) => decodeURIComponent(String(s)),
    escapeJavaScript: (s) => JSON.stringify(String(s)).slice(1, -1),
    matches: (re, s) => new RegExp(re).test(s),
    isNull: (v) => v === null || v === undefined,
    isNullOrEmpty: (v) => v === null || v === undefined || v === '',
    isNullOrBlank: (v) => v === null || v === undefined || String(v).trim() === '',
    isString: (v) => typeof v === 'string',
    isNumber: (v) => typeof v === 'number',
    isBoolean: (v) => typeof v === 'boolean',
    isList: (v) => Array.isArray(v),
    isMap: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
    typeOf: (v) => v === null ? 'Null' : Array.isArray(v) ? 'List' : ({ string: 'String', number: 'Number', boolean: 'Boolean', object: 'Map' })[typeof v] || 'Object',
    time,
  };
  Object.freeze(time);
  Object.freeze(util);
  const log = (level) => (...args) => __herald_log(level, args.map((a) => typeof a === 'string' ? a : JSON.stringify(a)).join(' '));
  globalThis.util = util;
  globalThis.runtime = { earlyReturn: (v) => { throw Object.assign(fail('early', 'early return'), { value: v }); } };
  globalThis.console = { log: log('info'), info: log('info'), debug: log('debug'), warn: log('warn'), error: log('error') };
  // Herald's extension (named like AppSync GraphQL's): an onSubscribe handler
  // sets an event pattern the subscription's events must match.
  let filter;
  globalThis.extensions = Object.freeze({
    setSubscriptionFilter: (pattern) => {
      if (pattern === null || typeof pattern !== 'object' || Array.isArray(pattern)) {
        throw new TypeError('extensions.setSubscriptionFilter takes an event pattern object');
      }
      filter = pattern;
    },
  });

  // Called by Herald: run `name` with the context (JSON text); answer JSON text.
  globalThis.__herald_invoke = (name, ctxJson) => {
    const fn = globalThis.__herald_handlers[name];
    if (typeof fn !== 'function') return JSON.stringify({ missing: true });
    const ctx = JSON.parse(ctxJson);
    // The context reference and the publish docs place these differently; offer both.
    ctx.channel = ctx.info.channel.path;
    ctx.channelNamespace = ctx.info.channelNamespace;
    ctx.operation = ctx.info.operation;
    filter = undefined;
    try {
      const out = fn(ctx);
      if (filter !== undefined) return JSON.stringify({ ok: out === undefined ? null : out, filter });
      return JSON.stringify({ ok: out === undefined ? null : out });
    } catch (e) {
      if (e && e.__herald === 'early') return JSON.stringify({ ok: e.value === undefined ? null : e.value });
      if (e && e.__herald) return JSON.stringify({ reject: e.__herald, message: e.message, errorType: e.errorType || null });
      return JSON.stringify({ thrown: String(e && e.name ? e.name + ': ' + e.message : e) });
    }
  };
})();
