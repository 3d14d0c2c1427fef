// UI text in English and Chinese; the page follows the browser's language (navigator.languages).
// Kept as one flat table so a missing translation is easy to spot side by side.

const STRINGS = {
  en: {
    title: "Article Q&A",
    skip: "Skip to the question box",
    sources: "Sources",
    apiKey: "API key",
    welcomeTitle: "Ask the team's articles",
    welcomeText: "Answers are built only from the indexed articles. Click a numbered marker after a sentence to read the passage it came from.",
    examplesLead: "Ask about:",
    conversation: "Conversation",
    close: "Close",
    you: "You",
    assistant: "Answer",
    lowConfidence: "weak match",
    openArticle: "Open the article ↗",
    questionLabel: "Your question",
    placeholder: "Ask the articles…",
    send: "Send",
    hint: "Enter to send · Shift+Enter for a new line",
    sourcesTitle: "Indexed articles",
    colArticle: "Article",
    colPassages: "Passages",
    colIngested: "Indexed",
    keyTitle: "API key needed",
    keyText: "This server only answers requests that carry an API key. It is kept in this browser (localStorage) and sent as a Bearer token.",
    keyRejected: "The saved API key was not accepted. Enter a valid key.",
    keyLabel: "API key",
    keyForget: "Forget saved key",
    cancel: "Cancel",
    keySave: "Save and retry",
    enterKey: "Enter API key",
    searching: "Searching the articles…",
    composing: "Found {n} passages, composing the answer…",
    notCoveredTitle: "Not covered by the articles",
    notCoveredText: "None of the indexed articles answers this. Try other words, or check the Sources list.",
    stubTitle: "This section is not written yet",
    stubText: "An article has a section for this, but it only says it will be filled in later.",
    confidence: "confidence {p}%",
    took: "{ms} ms",
    citedSources: "Sources",
    sourceLabel: "Source {n}: {title}",
    passageN: "Source [{n}]",
    lines: "lines {a}–{b}",
    line: "line {a}",
    unreachable: "Cannot reach the server. Check that it is running and your network, then try again.",
    connectionLost: "The connection dropped before the answer arrived. Try again.",
    unauthorized: "This server needs an API key.",
    rateLimited: "Too many questions right now. Wait {s} s and try again.",
    rateLimitedNoWait: "Too many questions right now. Wait a moment and try again.",
    noIndex: "No articles are indexed yet. Run `qa ingest` on the server first.",
    serverError: "The server could not answer: {msg}",
    retry: "Try again",
    indexSummary: "{docs} articles · {chunks} passages",
    statsSummary: "{docs} articles, {chunks} passages · model {model} · {gen} · updated {when}",
    statsFailed: "Could not load the list of sources: {msg}",
    loading: "Loading…",
    noDocuments: "No articles are indexed.",
    writing: "Writing the answer…",
    unverified: "not verified",
    unverifiedTitle: "This sentence could not be found in the passage it cites. Check the source before relying on it.",
    llmWritten: "written by the LLM, {p}% of sentences verified against their sources",
    llmFallback: "quoted answer (the LLM was not used: {reason})",
    voteGroup: "Rate this answer",
    voteQuestion: "Helpful?",
    voteUp: "Helpful",
    voteDown: "Not helpful",
    voteThanks: "Thanks, noted.",
    voteFailed: "Your vote was not recorded: {msg}",
    newConversation: "New conversation",
    newConversationHint: "Start over: the next question does not continue the earlier ones",
    searched: "Searched: {q}",
    conversationRestarted: "The earlier conversation had expired; this question started a new one.",
  },
  zh: {
    title: "文章问答",
    skip: "跳到提问框",
    sources: "资料来源",
    apiKey: "API 密钥",
    welcomeTitle: "向团队文章提问",
    welcomeText: "回答只来自已索引的文章。点击句子后面的数字标记，可以查看它引用的原文段落。",
    examplesLead: "可以问问：",
    conversation: "对话",
    close: "关闭",
    you: "你",
    assistant: "回答",
    lowConfidence: "相关性低",
    openArticle: "打开原文 ↗",
    questionLabel: "你的问题",
    placeholder: "向文章提问…",
    send: "发送",
    hint: "Enter 发送 · Shift+Enter 换行",
    sourcesTitle: "已索引的文章",
    colArticle: "文章",
    colPassages: "段落数",
    colIngested: "索引时间",
    keyTitle: "需要 API 密钥",
    keyText: "此服务器只回答带有 API 密钥的请求。密钥保存在本浏览器（localStorage）中，并以 Bearer 令牌发送。",
    keyRejected: "已保存的 API 密钥无效，请输入正确的密钥。",
    keyLabel: "API 密钥",
    keyForget: "删除已保存的密钥",
    cancel: "取消",
    keySave: "保存并重试",
    enterKey: "输入 API 密钥",
    searching: "正在检索文章…",
    composing: "找到 {n} 个段落，正在组织回答…",
    notCoveredTitle: "文章中没有涉及",
    notCoveredText: "已索引的文章都没有回答这个问题。换个说法试试，或查看资料来源列表。",
    stubTitle: "这一节还没有写完",
    stubText: "文章里有这个问题对应的小节，但目前只写着“待补充”。",
    confidence: "置信度 {p}%",
    took: "{ms} 毫秒",
    citedSources: "引用来源",
    sourceLabel: "来源 {n}：{title}",
    passageN: "来源 [{n}]",
    lines: "第 {a}–{b} 行",
    line: "第 {a} 行",
    unreachable: "无法连接服务器。请确认服务器正在运行、网络正常，然后重试。",
    connectionLost: "回答送达之前连接中断了，请重试。",
    unauthorized: "此服务器需要 API 密钥。",
    rateLimited: "提问太频繁了，请等待 {s} 秒后重试。",
    rateLimitedNoWait: "提问太频繁了，请稍等片刻再试。",
    noIndex: "还没有索引任何文章。请先在服务器上运行 `qa ingest`。",
    serverError: "服务器无法回答：{msg}",
    retry: "重试",
    indexSummary: "{docs} 篇文章 · {chunks} 个段落",
    statsSummary: "{docs} 篇文章，{chunks} 个段落 · 模型 {model} · {gen} · 更新于 {when}",
    statsFailed: "无法加载资料来源列表：{msg}",
    loading: "加载中…",
    noDocuments: "还没有索引任何文章。",
    writing: "正在撰写回答…",
    unverified: "未核实",
    unverifiedTitle: "这句话没能在它引用的原文段落中找到依据，使用前请先查看原文。",
    llmWritten: "由大模型撰写，{p}% 的句子已对照原文核实",
    llmFallback: "摘录原文的回答（未使用大模型：{reason}）",
    voteGroup: "评价这个回答",
    voteQuestion: "有帮助吗？",
    voteUp: "有帮助",
    voteDown: "没有帮助",
    voteThanks: "谢谢，已记录。",
    voteFailed: "评价没有记录下来：{msg}",
    newConversation: "新对话",
    newConversationHint: "重新开始：下一个问题不再接着前面的对话",
    searched: "检索：{q}",
    conversationRestarted: "之前的对话已过期，这个问题开始了新的对话。",
  },
};

/** "zh" for any Chinese browser language (zh-CN, zh-TW, zh-Hant…), else "en". */
export function pickLang(languages) {
  for (const tag of languages || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in STRINGS) return base;
  }
  return "en";
}

export const lang = pickLang(navigator.languages?.length ? navigator.languages : [navigator.language]);

/** The UI string `key`, with {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** Fill the static page: data-i18n (text), data-i18n-placeholder, data-i18n-aria-label. */
export function applyStatic(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

/** A date in the page's language, from Unix seconds. */
export function formatTime(seconds) {
  if (!seconds) return "—";
  return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en", { dateStyle: "medium", timeStyle: "short" }).format(new Date(seconds * 1000));
}
