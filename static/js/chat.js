// Parley chat page: streaming answers, Stop, keyboard, copy buttons and "Load earlier".
// Progressive enhancement: every form here also works without this script (it posts,
// waits for the full answer and redirects). No framework, no inline script (CSP).
// Words shown to the reader come from the server, translated: the data-* attributes of
// #chat-labels (templates/chat/_composer_fields.html) and the events' own texts.

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

const composer = $("#composer");
const input = $("#composer-input");
const sendButton = $("#send-button");
const stopButton = $("#stop-button");
const errorBox = $("#composer-error");
const messagesBox = $("#messages");
const contextInfo = $("#context-info");
const labels = ($("#chat-labels") || document.createElement("span")).dataset;

let streaming = false;

function newClientId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function csrfToken(form) {
  const field = $("input[name=csrfmiddlewaretoken]", form || document);
  return field ? field.value : "";
}

function showError(text) {
  if (!errorBox) return;
  errorBox.textContent = text || "";
  errorBox.hidden = !text;
}

function setStreaming(on) {
  streaming = on;
  if (sendButton) sendButton.disabled = on;
  if (stopButton) stopButton.hidden = !on;
  $$("[data-stream-form] button").forEach((b) => (b.disabled = on));
}

// --- Composer: Enter (or Ctrl+Enter) sends, the box grows with the text ---
function grow() {
  if (!input) return;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, window.innerHeight * 0.4)}px`;
}

if (input) {
  input.addEventListener("input", grow);
  // Preferences: Enter sends (Shift+Enter: new line), or Enter is a new line and
  // Ctrl/Cmd+Enter sends.
  const enterSends = input.dataset.enterSends !== "false";
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    const send = enterSends ? !event.shiftKey : event.ctrlKey || event.metaKey;
    if (send) {
      event.preventDefault();
      if (!streaming) composer.requestSubmit();
    }
  });
  grow();
}

// --- Messages on the page ---
function messageElement(role, label) {
  const article = document.createElement("article");
  article.className = `msg msg-${role} status-${role === "user" ? "complete" : "streaming"}`;
  const head = document.createElement("header");
  head.className = "msg-head";
  const name = document.createElement("span");
  name.className = "msg-role";
  name.textContent = label;
  head.append(name);
  const body = document.createElement("div");
  body.className = `msg-body ${role === "assistant" ? "markdown" : "plain"}`;
  body.dataset.copySource = "";
  article.append(head, body);
  messagesBox.append(article);
  return article;
}

function setBadge(article, text, isError) {
  let badge = $(".badge", article);
  if (!text) {
    if (badge) badge.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement("span");
    $(".msg-head", article).append(badge);
  }
  badge.className = isError ? "badge badge-error" : "badge";
  badge.textContent = text;
}

function scrollToEnd() {
  window.scrollTo({ top: document.body.scrollHeight });
}

// --- Server-sent events over fetch (POST with a body, so not EventSource) ---
async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

async function streamAnswer(form, { userText, replaceLast } = {}) {
  showError("");
  const clientField = $("[data-client-id]", form);
  if (clientField && !clientField.value) clientField.value = newClientId();
  const body = new FormData(form);
  let response;
  setStreaming(true);
  try {
    response = await fetch(form.action, {
      method: "POST",
      body,
      headers: { Accept: "text/event-stream" },
      credentials: "same-origin",
    });
  } catch (error) {
    setStreaming(false);
    showError(labels.offline || "Could not reach Parley. Check your connection and send again.");
    return;
  }
  if (!response.ok || !(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    setStreaming(false);
    let message = `${labels.errorStatus || "Error"} ${response.status}`;
    try {
      message = (await response.json()).error || message;
    } catch (ignored) {
      /* not JSON: keep the status */
    }
    showError(message);
    return;
  }
  if (clientField) clientField.value = "";
  const picker = $("#model-select", form);
  const modelName =
    (picker && picker.selectedOptions[0] && picker.selectedOptions[0].text) ||
    labels.modelName ||
    labels.assistant ||
    "Assistant";
  let assistant = null;
  let textNode = null;
  let chatUrl = null;
  try {
    for await (const { event, data } of readEvents(response)) {
      if (event === "start") {
        if (replaceLast) replaceLast();
        if (userText) {
          const user = messageElement("user", labels.you || "You");
          $(".msg-body", user).textContent = userText;
          if (form === composer) {
            input.value = "";
            grow();
          }
        }
        assistant = messageElement("assistant", modelName);
        assistant.id = `message-${data.message_id}`;
        setBadge(assistant, labels.writing || "writing…");
        textNode = document.createTextNode("");
        $(".msg-body", assistant).append(textNode);
        if (contextInfo && data.context_text) contextInfo.textContent = data.context_text;
        chatUrl = `/chats/${data.session_id}/`;
        // A new chat's page had no chat to stop until now.
        if (!composer.dataset.stopUrl) composer.dataset.stopUrl = `${chatUrl}stop/`;
        if (form.hasAttribute("data-new-chat")) history.replaceState(null, "", chatUrl);
        scrollToEnd();
      } else if (event === "delta") {
        if (textNode && data.content) textNode.appendData(data.content);
        scrollToEnd();
      } else if (event === "done" || event === "error") {
        if (!assistant) assistant = messageElement("assistant", modelName);
        const bodyBox = $(".msg-body", assistant);
        bodyBox.innerHTML = data.html || ""; // sanitised on the server (nh3)
        assistant.className = `msg msg-assistant status-${data.status}`;
        const badge = data.status === "complete" ? "" : labels[data.status] || data.status;
        setBadge(assistant, badge, data.status === "error" || data.status === "interrupted");
        if (data.error) {
          const p = document.createElement("p");
          p.className = "msg-error";
          p.setAttribute("role", "alert");
          p.textContent = data.error;
          assistant.append(p);
        }
        addCopyButtons(assistant);
      }
    }
  } catch (error) {
    showError(labels.broken || "The connection broke; reload to see the saved answer.");
  } finally {
    setStreaming(false);
  }
  // The page around the new answer (Regenerate, Edit, title, sidebar) comes from the server.
  // (assign() to the same path with only a new #fragment would not load the page again.)
  if (chatUrl) {
    history.replaceState(null, "", `${chatUrl}#${assistant ? assistant.id : ""}`);
    window.location.reload();
  }
}

if (composer) {
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    if (streaming) return;
    const text = input.value;
    if (!text.trim()) {
      input.focus();
      return;
    }
    streamAnswer(composer, { userText: text });
  });
}

$$("[data-stream-form]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (streaming) return;
    const isEdit = form.classList.contains("edit-form");
    const text = isEdit ? $("textarea", form).value : null;
    streamAnswer(form, {
      userText: text,
      replaceLast: () => {
        const all = $$(".msg", messagesBox);
        const last = all[all.length - 1];
        if (last && last.classList.contains("msg-assistant")) last.remove();
        if (isEdit) {
          const users = $$(".msg-user", messagesBox);
          if (users.length) users[users.length - 1].remove();
        }
      },
    });
  });
});

// --- Stop: a flag any Parley process sees; the stream then ends with status "stopped" ---
if (stopButton) {
  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    try {
      await fetch(composer.dataset.stopUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(composer), Accept: "application/json" },
        credentials: "same-origin",
      });
    } finally {
      stopButton.disabled = false;
    }
  });
}

// --- Copy buttons for whole messages and for code blocks ---
function copyButton(label, getText) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy-button";
  button.textContent = label;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(getText());
      button.textContent = labels.copied || "Copied";
      setTimeout(() => (button.textContent = label), 1500);
    } catch (error) {
      button.textContent = "×";
    }
  });
  return button;
}

function addCopyButtons(root) {
  $$("[data-copy-source]", root).forEach((body) => {
    const article = body.closest(".msg");
    if (!article || $(".copy-message", article)) return;
    const button = copyButton(labels.copy || "Copy", () => body.innerText);
    button.classList.add("copy-message");
    $(".msg-head", article).append(button);
  });
  $$(".code-block", root).forEach((block) => {
    // A long line scrolls inside the block: keyboard users must be able to scroll it too.
    const pre = $("pre", block);
    if (pre && !pre.hasAttribute("tabindex")) pre.tabIndex = 0;
    if ($(".copy-code", block)) return;
    const button = copyButton(labels.copyCode || "Copy code", () => {
      const code = $("pre", block);
      return code ? code.innerText : block.innerText;
    });
    button.classList.add("copy-code");
    block.prepend(button);
  });
}

addCopyButtons(document);

// --- "Load earlier": fetch the older page and put its messages on top ---
document.addEventListener("click", async (event) => {
  const link = event.target.closest("#load-earlier");
  if (!link || !messagesBox) return;
  event.preventDefault();
  const response = await fetch(link.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const older = $$("#messages > .msg", page);
  const anchor = messagesBox.firstElementChild;
  older.forEach((node) => messagesBox.insertBefore(document.adoptNode(node), anchor));
  addCopyButtons(messagesBox);
  const next = $("#load-earlier", page);
  if (next) link.href = next.href;
  else link.closest(".load-earlier").remove();
});
