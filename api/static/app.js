// The chat page's behaviour: ask (streamed), show answers, open cited passages, the sources
// dialog and the API-key prompt. Plain ES modules, no framework, no build step.

import { applyStatic, t } from "./i18n.js";
import { ApiError, askStream, clearKey, getKey, getStats, sendFeedback, setKey } from "./api.js";
import { appendDraft, el, fillPassage, fillSources, renderAnswer, renderError, renderPending, renderQuestion, setStatus, setVote } from "./render.js";

const $ = (id) => document.getElementById(id);
const form = $("ask-form");
const box = $("question");
const sendButton = $("send");
const turns = $("turns");
const passage = $("passage");
const keyDialog = $("key-dialog");
const sourcesDialog = $("sources-dialog");
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

const answers = new WeakMap(); // answer <li> → Answer JSON, for the markers inside it
const retries = new WeakMap(); // error <li> → function that asks again
let busy = false;
let opener = null; // the marker that opened the passage panel, to return focus to
let afterKey = null; // what to do once a key has been entered

// --- the conversation, kept in this tab (sessionStorage): its id and the turns shown -------------
// Follow-ups ("它怎么删除？") are resolved by the server against the earlier turns of
// `conversation.id`; a reload shows the same turns and continues the same conversation.
const CONVERSATION_KEY = "qa.conversation";
const MAX_KEPT_TURNS = 20;

function loadConversation() {
  try {
    const c = JSON.parse(sessionStorage.getItem(CONVERSATION_KEY) || "null");
    if (c && Array.isArray(c.turns)) return { id: typeof c.id === "string" ? c.id : null, turns: c.turns };
  } catch { /* storage disabled or a corrupt entry: start afresh */ }
  return { id: null, turns: [] };
}

function saveConversation() {
  conversation.turns = conversation.turns.slice(-MAX_KEPT_TURNS);
  for (;;) {
    try {
      sessionStorage.setItem(CONVERSATION_KEY, JSON.stringify(conversation));
      return;
    } catch {
      if (!conversation.turns.length) return; // storage unavailable: the conversation lasts this page only
      conversation.turns.shift(); // over quota: drop the oldest turn and try again
    }
  }
}

let conversation = loadConversation();

function showTurn(question, answer) {
  turns.append(renderQuestion(question));
  const li = renderAnswer(answer);
  answers.set(li, answer);
  turns.append(li);
  return li;
}

function newConversation() {
  if (busy) return;
  conversation = { id: null, turns: [] };
  saveConversation();
  if (!passage.hidden) closePassage();
  turns.replaceChildren();
  $("welcome").hidden = false;
  $("new-conversation").hidden = true;
  box.focus();
}

applyStatic();
$("open-key").hidden = !getKey();
for (const turn of conversation.turns) if (turn && turn.q && turn.answer) showTurn(turn.q, turn.answer);
if (conversation.turns.length) $("welcome").hidden = true;
$("new-conversation").hidden = !conversation.turns.length;
$("new-conversation").addEventListener("click", newConversation);
loadSummary();

// Enter sends, Shift+Enter is a new line; Enter that confirms an IME composition (pinyin) does not send.
box.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const question = box.value.trim();
  if (!question || busy) return;
  box.value = "";
  ask(question);
});

function scrollIntoView(node) {
  node.scrollIntoView({ block: "nearest", behavior: reducedMotion ? "auto" : "smooth" });
}

/** Ask one question: a pending card with progress, replaced by the answer or by an error card. */
async function ask(question, { repeat = false } = {}) {
  busy = true;
  sendButton.disabled = true;
  $("welcome").hidden = true;
  if (!repeat) turns.append(renderQuestion(question));
  const pending = renderPending(t("searching"));
  turns.append(pending);
  scrollIntoView(pending);
  try {
    const answer = await askStream(question, {
      conversationId: conversation.id,
      onProgress: (p) => setStatus(pending, p.stage === "composing" ? t("composing", { n: p.passages ?? 0 })
        : p.searched ? t("searched", { q: p.searched }) : t("searching")),
      onToken: (text) => appendDraft(pending, text),
    });
    const li = renderAnswer(answer);
    answers.set(li, answer);
    pending.replaceWith(li);
    scrollIntoView(li);
    if (answer.conversation_id) {
      conversation.id = answer.conversation_id;
      conversation.turns.push({ q: question, answer });
      saveConversation();
      $("new-conversation").hidden = false;
    }
  } catch (err) {
    const li = errorCard(err);
    retries.set(li, () => { li.remove(); ask(question, { repeat: true }); });
    pending.replaceWith(li);
    scrollIntoView(li);
    if (err.kind === "unauthorized") promptForKey(err, retries.get(li));
  } finally {
    busy = false;
    sendButton.disabled = false;
  }
}

/** What went wrong, in the user's words, with the buttons that can fix it. */
function errorMessage(err) {
  if (!(err instanceof ApiError)) return t("serverError", { msg: String(err?.message || err) });
  switch (err.kind) {
    case "unreachable": return t("unreachable");
    case "lost": return t("connectionLost");
    case "unauthorized": return err.sentKey ? t("keyRejected") : t("unauthorized");
    case "rate_limited": return err.retryAfter != null ? t("rateLimited", { s: err.retryAfter }) : t("rateLimitedNoWait");
    case "no_index": return t("noIndex");
    default: return t("serverError", { msg: err.message });
  }
}

function errorCard(err) {
  const actions = err?.kind === "unauthorized" ? [[t("enterKey"), "key"]] : [[t("retry"), "retry"]];
  return renderError(errorMessage(err), actions);
}

// One listener for every button inside the conversation: markers, source chips, error actions.
turns.addEventListener("click", (e) => {
  const cite = e.target.closest("button[data-n]");
  if (cite) {
    const answer = answers.get(cite.closest("li.turn"));
    const c = answer?.citations.find((x) => x.n === Number(cite.dataset.n));
    if (c) openPassage(c, cite);
    return;
  }
  const voteButton = e.target.closest("button.vote[data-vote]");
  if (voteButton) {
    vote(voteButton);
    return;
  }
  const action = e.target.closest("button[data-action]");
  if (!action) return;
  const li = action.closest("li.turn");
  if (action.dataset.action === "retry") retries.get(li)?.();
  if (action.dataset.action === "key") promptForKey(null, retries.get(li));
});

/** Send a 👍/👎; the bar shows the vote once the server has it, or why it was not recorded. */
async function vote(button) {
  const bar = button.closest(".votes");
  const choice = button.dataset.vote;
  try {
    await sendFeedback(bar.dataset.answerId, choice);
    setVote(bar, choice, t("voteThanks"));
  } catch (err) {
    setVote(bar, null, t("voteFailed", { msg: errorMessage(err) }));
    if (err.kind === "unauthorized") promptForKey(err, () => vote(button));
  }
}

function openPassage(c, from) {
  fillPassage(c);
  const turn = from.closest("li.turn");
  for (const b of document.querySelectorAll("button[data-n].active")) b.classList.remove("active");
  for (const b of turn.querySelectorAll(`button[data-n="${c.n}"]`)) b.classList.add("active");
  passage.hidden = false;
  opener = from;
  passage.focus({ preventScroll: true });
  // scroll the passage text (not the panel, whose title must stay visible) to the first highlight
  const text = $("passage-text");
  const first = text.querySelector("mark");
  text.scrollTop = first ? Math.max(0, first.offsetTop - text.clientHeight / 4) : 0;
}

function closePassage() {
  passage.hidden = true;
  for (const b of document.querySelectorAll("button[data-n].active")) b.classList.remove("active");
  if (opener?.isConnected) opener.focus();
  opener = null;
}

$("close-passage").addEventListener("click", closePassage);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !passage.hidden && !document.querySelector("dialog[open]")) closePassage();
});

// --- API key -------------------------------------------------------------------------------

function promptForKey(err, then) {
  afterKey = then || null;
  $("key-reason").textContent = err?.sentKey ? t("keyRejected") : t("keyText");
  $("key-input").value = "";
  $("key-forget").hidden = !getKey();
  if (!keyDialog.open) keyDialog.showModal();
  $("key-input").focus();
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  setKey(key);
  $("open-key").hidden = false;
  keyDialog.close();
  const next = afterKey;
  afterKey = null;
  next?.();
  if (!$("index-summary").textContent) loadSummary();
});
$("key-cancel").addEventListener("click", () => { afterKey = null; keyDialog.close(); });
$("key-forget").addEventListener("click", () => {
  clearKey();
  $("key-forget").hidden = true;
  $("open-key").hidden = true;
  $("key-input").focus();
});
$("open-key").addEventListener("click", () => promptForKey(null, null));

// --- index summary and the sources dialog ----------------------------------------------------

/** "4 articles · 21 passages" in the header, and a few article titles to ask about. */
async function loadSummary() {
  try {
    const stats = await getStats();
    $("index-summary").textContent = t("indexSummary", { docs: stats.documents, chunks: stats.chunks });
    const titles = [...new Set((stats.documents_list || []).map((d) => d.title).filter(Boolean))].slice(0, 3);
    $("examples").replaceChildren(...(titles.length ? [el("span", {}, t("examplesLead")), ...titles.map((title) =>
      el("button", { type: "button", class: "example" }, title))] : []));
  } catch {
    // the header stays quiet; asking a question explains what is wrong
  }
}

$("examples").addEventListener("click", (e) => {
  const b = e.target.closest("button.example");
  if (b && !busy) ask(b.textContent);
});

async function loadSources() {
  const summary = $("sources-summary");
  const tbody = sourcesDialog.querySelector("tbody");
  summary.textContent = t("loading");
  tbody.replaceChildren();
  try {
    fillSources(await getStats(), summary, tbody);
  } catch (err) {
    summary.textContent = t("statsFailed", { msg: errorMessage(err) });
    if (err.kind === "unauthorized") promptForKey(err, loadSources);
  }
}

$("open-sources").addEventListener("click", () => {
  sourcesDialog.showModal();
  loadSources();
});
// a click on the backdrop (outside the dialog box) closes it, like Escape does
for (const dialog of [sourcesDialog, keyDialog]) {
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
}
