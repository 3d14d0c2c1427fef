// Building the page's pieces from API data. Everything from the server (questions, answers,
// article titles, headings, passages, paths) goes into the page as text nodes: nothing here
// parses HTML, so an article containing <script> or <img onerror> is shown, never run.

import { t, formatTime } from "./i18n.js";

/** Create an element; string children become text nodes. Attribute names are always ours. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An absolute http(s) URL, or null: no javascript:/data: links, no guessing at relative ones. */
export function safeUrl(url) {
  if (!url) return null;
  try {
    const u = new URL(String(url));
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/**
 * The passage with [start, end) ranges wrapped in <mark>. The server counts Python characters
 * (code points), JavaScript strings count UTF-16 units, so slice an array of code points.
 */
export function highlighted(text, ranges) {
  const chars = Array.from(text || "");
  const spans = (ranges || [])
    .map(([a, b]) => [Math.max(0, a | 0), Math.min(chars.length, b | 0)])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  const frag = document.createDocumentFragment();
  let pos = 0;
  for (const [a, b] of spans) {
    const start = Math.max(a, pos);
    if (b <= start) continue;
    if (start > pos) frag.append(chars.slice(pos, start).join(""));
    frag.append(el("mark", {}, chars.slice(start, b).join("")));
    pos = b;
  }
  if (pos < chars.length) frag.append(chars.slice(pos).join(""));
  return frag;
}

export const fileLine = (c) =>
  `${c.path}:${c.line_start}${c.line_end > c.line_start ? `-${c.line_end}` : ""}`;

function citeButton(c, cls, ...label) {
  return el(
    "button",
    { type: "button", class: `${cls}${c.low_confidence ? " low" : ""}`, "data-n": c.n,
      "aria-label": t("sourceLabel", { n: c.n, title: c.title }), "aria-controls": "passage" },
    ...label,
  );
}

/** Plain text with each [n] that has a citation turned into a button and `code` as code. */
function inlineInto(parent, text, byN) {
  const re = /\[(\d+)\]|`([^`\n]+)`/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    if (m[2] !== undefined) {
      parent.append(el("code", {}, m[2]));
    } else {
      const c = byN.get(Number(m[1]));
      parent.append(c ? citeButton(c, "cite", String(c.n)) : m[0]);
    }
    last = re.lastIndex;
  }
  if (last < text.length) parent.append(text.slice(last));
}

/** The answer text: prose with clickable markers, and the commands it quotes as code blocks. */
function answerText(text, citations) {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const box = el("div", { class: "answer-text" });
  const parts = text.split(/\n?```\n?/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      box.append(el("pre", { class: "answer-code" }, el("code", {}, part.replace(/\n$/, ""))));
    } else if (part.trim()) {
      const p = el("p", {});
      inlineInto(p, part.replace(/^\n+|\n+$/g, ""), byN);
      box.append(p);
    }
  });
  return box;
}

function sourceList(citations) {
  return el(
    "div", { class: "sources" },
    el("p", { class: "sources-label" }, t("citedSources")),
    el("ol", {}, citations.map((c) =>
      el("li", {}, citeButton(
        c, "source",
        el("span", { class: "source-n" }, String(c.n)),
        el("span", { class: "source-text" },
          el("span", { class: "source-title" }, c.title),
          c.heading ? el("span", { class: "source-heading" }, c.heading) : null),
        c.low_confidence ? el("span", { class: "badge low" }, t("lowConfidence")) : null,
      )),
    )),
  );
}

export function renderQuestion(question) {
  return el("li", { class: "turn user" },
    el("div", { class: "bubble" }, el("span", { class: "visually-hidden" }, `${t("you")}: `), el("p", {}, question)));
}

export function renderPending(status) {
  return el("li", { class: "turn assistant pending", "aria-busy": "true" },
    el("div", { class: "bubble" }, el("span", { class: "spinner", "aria-hidden": "true" }), el("span", { class: "status" }, status)));
}

export function setStatus(pending, status) {
  pending.querySelector(".status").textContent = status;
}

/** An LLM answer's text as it streams in, shown in the pending card (replaced by the verified answer). */
export function appendDraft(pending, text) {
  let draft = pending.querySelector(".draft");
  if (!draft) {
    setStatus(pending, t("writing"));
    draft = el("p", { class: "answer-text draft", "aria-live": "off" });
    pending.querySelector(".bubble").append(draft);
  }
  draft.append(text);
}

/** An LLM answer sentence by sentence; a sentence verification could not support is marked. */
function checkedText(answer) {
  const p = el("p", { class: "answer-text" });
  const byN = new Map((answer.citations || []).map((c) => [c.n, c]));
  for (const s of answer.sentences) {
    const span = el("span", { class: s.supported ? "sentence" : "sentence unsupported" });
    inlineInto(span, s.text, byN);
    if (!s.supported) {
      span.setAttribute("title", t("unverifiedTitle"));
      span.append(el("span", { class: "badge unverified" }, t("unverified")));
    }
    p.append(span);
  }
  return p;
}

function writerNote(answer) {
  if (answer.writer === "llm") return t("llmWritten", { p: Math.round((answer.verified_share ?? 1) * 100) });
  if (answer.writer_fallback_reason) return t("llmFallback", { reason: answer.writer_fallback_reason });
  return null;
}

/** 👍/👎 under an answer: two toggle buttons (aria-pressed) and a polite status line. */
function voteBar(answer) {
  if (!answer.answer_id) return null;
  return el("div", { class: "votes", role: "group", "aria-label": t("voteGroup"), "data-answer-id": answer.answer_id },
    el("span", { class: "votes-label" }, t("voteQuestion")),
    el("button", { type: "button", class: "vote", "data-vote": "up", "aria-pressed": "false", "aria-label": t("voteUp"), title: t("voteUp") }, "👍"),
    el("button", { type: "button", class: "vote", "data-vote": "down", "aria-pressed": "false", "aria-label": t("voteDown"), title: t("voteDown") }, "👎"),
    el("span", { class: "vote-status", role: "status" }));
}

/** Mark the chosen vote (or the failure) on an answer's vote bar. */
export function setVote(bar, vote, message) {
  for (const b of bar.querySelectorAll("button.vote")) b.setAttribute("aria-pressed", String(b.dataset.vote === vote));
  bar.querySelector(".vote-status").textContent = message;
}

/** A confident answer with clickable markers and its sources, or the distinct "not covered" card. */
export function renderAnswer(answer) {
  const meta = el("p", { class: "meta" },
    t("confidence", { p: Math.round((answer.confidence || 0) * 100) }), " · ", t("took", { ms: Math.round(answer.took_ms || 0) }));
  const card = renderAnswerCard(answer, meta);
  // a follow-up was searched with the earlier topic: say what was searched, above the answer
  if (answer.searched) card.querySelector(".bubble").prepend(el("p", { class: "searched" }, t("searched", { q: answer.searched })));
  if (answer.conversation?.restarted) card.querySelector(".bubble").prepend(el("p", { class: "searched" }, t("conversationRestarted")));
  return card;
}

function renderAnswerCard(answer, meta) {
  if (answer.abstained) {
    return el("li", { class: "turn assistant abstained" },
      el("div", { class: "bubble" },
        el("p", { class: "nc-title" }, el("span", { class: "nc-icon", "aria-hidden": "true" }, "∅"), t("notCoveredTitle")),
        el("p", { class: "nc-text" }, t("notCoveredText")),
        meta, voteBar(answer)));
  }
  if (answer.status === "stub") {
    return el("li", { class: "turn assistant stub" },
      el("div", { class: "bubble" },
        el("p", { class: "nc-title" }, el("span", { class: "nc-icon", "aria-hidden": "true" }, "✎"), t("stubTitle")),
        el("p", { class: "nc-text" }, t("stubText")),
        answerText(answer.answer || "", answer.citations || []),
        answer.citations?.length ? sourceList(answer.citations) : null,
        meta, voteBar(answer)));
  }
  const note = writerNote(answer);
  if (note) meta.append(" · ", note);
  const written = answer.writer === "llm" && answer.sentences?.length;
  return el("li", { class: "turn assistant answered" },
    el("div", { class: "bubble" },
      el("span", { class: "visually-hidden" }, `${t("assistant")}: `),
      written ? checkedText(answer) : answerText(answer.answer || "", answer.citations || []),
      answer.citations?.length ? sourceList(answer.citations) : null,
      meta, voteBar(answer)));
}

/** An error card: what happened, and the buttons that can fix it (retry, enter a key). */
export function renderError(message, actions) {
  return el("li", { class: "turn assistant error", role: "alert" },
    el("div", { class: "bubble" },
      el("p", {}, message),
      actions.length ? el("p", { class: "error-actions" },
        actions.map(([label, action]) => el("button", { type: "button", class: "ghost", "data-action": action }, label))) : null));
}

/** Fill the passage panel for one citation. */
export function fillPassage(c) {
  const $ = (id) => document.getElementById(id);
  $("passage-n").textContent = t("passageN", { n: c.n });
  $("passage-title").textContent = c.title;
  $("passage-heading").textContent = c.heading || "";
  $("passage-heading").hidden = !c.heading;
  $("passage-loc").textContent = fileLine(c);
  $("passage-loc").title = c.line_end > c.line_start ? t("lines", { a: c.line_start, b: c.line_end }) : t("line", { a: c.line_start });
  $("passage-low").hidden = !c.low_confidence;
  $("passage-text").replaceChildren(highlighted(c.text, c.highlights));
  const link = $("passage-link");
  const href = safeUrl(c.url);
  link.hidden = !href;
  if (href) link.href = href;
  else link.removeAttribute("href");
}

/** The sources dialog: a summary line and one row per indexed article. */
export function fillSources(stats, summary, tbody) {
  summary.textContent = t("statsSummary", {
    docs: stats.documents, chunks: stats.chunks, model: stats.model, gen: stats.generation, when: formatTime(stats.updated_at),
  });
  const docs = stats.documents_list || [];
  if (!docs.length) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 3 }, t("noDocuments"))));
    return;
  }
  tbody.replaceChildren(...docs.map((d) => {
    const href = safeUrl(d.url);
    const title = href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, d.title || d.path) : (d.title || d.path);
    return el("tr", {},
      el("td", {}, el("span", { class: "doc-title" }, title),
        el("code", { class: "doc-path" }, d.collection && d.collection !== "default" ? `${d.collection}/${d.path}` : d.path)),
      el("td", { class: "num" }, String(d.chunks)),
      el("td", { class: "when" }, formatTime(d.ingested_at)));
  }));
}
