// Talking to the server: the answer stream (SSE read with fetch, so a Bearer key can be sent),
// /stats, and the API key kept in localStorage. Every failure becomes an ApiError with a `kind`
// the page knows how to explain: unreachable, lost, unauthorized, rate_limited, no_index, server.

const KEY_STORAGE = "qa.apiKey";
let memoryKey = ""; // used when localStorage is unavailable (private mode, storage disabled)

export function getKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

export function setKey(key) {
  try { localStorage.setItem(KEY_STORAGE, key); } catch { /* private mode: the key lasts this page only */ }
  memoryKey = key;
}

export function clearKey() {
  try { localStorage.removeItem(KEY_STORAGE); } catch { /* ignore */ }
  memoryKey = "";
}

const currentKey = () => getKey() || memoryKey;

export class ApiError extends Error {
  constructor(kind, message, { status = 0, code = "", retryAfter = null, sentKey = false } = {}) {
    super(message);
    Object.assign(this, { kind, status, code, retryAfter, sentKey });
  }
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), or null. */
function retryAfterSeconds(value) {
  if (!value) return null;
  const n = Number(value);
  if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

async function errorFrom(res, sentKey) {
  let code = "";
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = String(body.error.code || "");
      message = String(body.error.message || message);
    } else if (body && typeof body.detail === "string") {
      message = body.detail;
    }
  } catch { /* not JSON (a proxy's error page): keep the status text */ }
  const opts = { status: res.status, code, sentKey };
  if (res.status === 401) return new ApiError("unauthorized", message, opts);
  if (res.status === 429) return new ApiError("rate_limited", message, { ...opts, retryAfter: retryAfterSeconds(res.headers.get("Retry-After")) });
  if (res.status === 503 && code === "index_missing") return new ApiError("no_index", message, opts);
  return new ApiError("server", message, opts);
}

async function send(url, accept, signal) {
  const key = currentKey();
  const headers = { Accept: accept };
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(url, { headers, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("unreachable", String(err.message || err));
  }
  if (!res.ok) throw await errorFrom(res, Boolean(key));
  return res;
}

/** One SSE block ("event: x\ndata: {...}") as {event, data}, or null for comments/keep-alives. */
function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try { return { event, data: JSON.parse(data.join("\n")) }; } catch { return null; }
}

/**
 * Ask a question over /ask/stream (in the conversation `conversationId`, when given). Calls
 * onProgress({stage, passages, searched}) as the server works, onToken(text) for each piece of an
 * LLM-written answer as it streams (unverified), and resolves with the Answer JSON (see qa.models.Answer).
 */
export async function askStream(question, { onProgress, onToken, signal, topK, conversationId } = {}) {
  const params = new URLSearchParams({ q: question });
  if (topK) params.set("top_k", String(topK));
  if (conversationId) params.set("conversation_id", conversationId);
  const res = await send(`/ask/stream?${params}`, "text/event-stream", signal);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (err.name === "AbortError") throw err;
        throw new ApiError("lost", String(err.message || err));
      }
      if (chunk.done) break;
      buffer = (buffer + decoder.decode(chunk.value, { stream: true })).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const ev = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (!ev) continue;
        if (ev.event === "progress") onProgress?.(ev.data);
        else if (ev.event === "token") onToken?.(String(ev.data?.text ?? "")); // LLM text, not yet verified
        else if (ev.event === "answer") return ev.data;
        else if (ev.event === "error") {
          const e = ev.data?.error || {};
          throw new ApiError("server", String(e.message || "error"), { code: String(e.code || "") });
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  throw new ApiError("lost", "the stream ended without an answer");
}

/** GET /stats: what is indexed (documents_list has one row per article). */
export async function getStats(signal) {
  const res = await send("/stats", "application/json", signal);
  return res.json();
}

/** POST /feedback: a 👍/👎 on one answer (the same voter voting again replaces the vote). */
export async function sendFeedback(answerId, vote, comment) {
  const key = currentKey();
  const headers = { Accept: "application/json", "Content-Type": "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch("/feedback", { method: "POST", headers, cache: "no-store",
      body: JSON.stringify(comment ? { answer_id: answerId, vote, comment } : { answer_id: answerId, vote }) });
  } catch (err) {
    throw new ApiError("unreachable", String(err.message || err));
  }
  if (!res.ok) throw await errorFrom(res, Boolean(key));
  return res.json();
}
