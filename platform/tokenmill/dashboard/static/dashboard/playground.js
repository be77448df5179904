// The playground: posts OpenAI's chat body to the gateway and shows the stream as it comes.
(function () {
  "use strict";
  const form = document.getElementById("playground");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const transcript = $("pg-transcript");
  const errorBox = $("pg-error");
  const send = $("pg-send");
  const stopButton = $("pg-stop-button");
  const message = $("pg-message");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  let history = [];
  let running = null;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function addTurn(role, text) {
    const empty = $("pg-empty");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = "turn turn-" + role;
    const label = document.createElement("span");
    label.className = "turn-role";
    label.textContent = role === "user" ? "You" : "Model";
    const body = document.createElement("div");
    body.className = "turn-text";
    body.textContent = text;
    item.append(label, body);
    transcript.append(item);
    transcript.scrollTop = transcript.scrollHeight;
    return item;
  }

  function number(name) {
    const raw = form.elements[name].value.trim();
    return raw === "" ? undefined : Number(raw);
  }

  function requestBody() {
    const messages = [];
    const system = form.elements.system.value.trim();
    if (system) messages.push({ role: "system", content: system });
    const body = {
      model: form.elements.model.value,
      messages: messages.concat(history),
      stream: true,
      stream_options: { include_usage: true },
    };
    for (const name of ["temperature", "top_p", "max_tokens"]) {
      const value = number(name);
      if (value !== undefined) body[name] = value;
    }
    const stop = form.elements.stop.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (stop.length) body.stop = stop;
    return body;
  }

  function setRunning(controller) {
    running = controller;
    send.disabled = !!controller;
    stopButton.hidden = !controller;
  }

  async function run() {
    const text = message.value.trim();
    if (!text || running) return;
    showError("");
    history.push({ role: "user", content: text });
    addTurn("user", text);
    message.value = "";
    const turn = addTurn("assistant", "");
    turn.classList.add("is-streaming");
    const out = turn.querySelector(".turn-text");
    const controller = new AbortController();
    setRunning(controller);
    let answer = "";
    try {
      const response = await fetch(form.dataset.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify(requestBody()),
        signal: controller.signal,
        credentials: "same-origin",
      });
      if (!response.ok) {
        let detail = "The request failed (" + response.status + ").";
        try { detail = (await response.json()).error.message; } catch (e) { /* not JSON */ }
        throw new Error(detail);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!event.startsWith("data: ")) continue;
          const data = event.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) {
            $("pg-usage").textContent = chunk.usage.prompt_tokens + " prompt + " +
              chunk.usage.completion_tokens + " completion tokens";
          }
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            answer += delta.content;
            out.textContent = answer;
            transcript.scrollTop = transcript.scrollHeight;
          }
        }
      }
      history.push({ role: "assistant", content: answer });
    } catch (error) {
      if (error.name !== "AbortError") {
        showError(error.message);
        history.pop();  // the question goes back unanswered; it may be sent again
        if (!answer) turn.remove();
      } else if (answer) {
        history.push({ role: "assistant", content: answer });
      }
    } finally {
      turn.classList.remove("is-streaming");
      setRunning(null);
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); run(); }
  });
  stopButton.addEventListener("click", () => running && running.abort());
  $("pg-clear").addEventListener("click", () => {
    history = [];
    transcript.innerHTML = '<li class="transcript-empty muted" id="pg-empty">Send a message to start.</li>';
    $("pg-usage").textContent = "";
    showError("");
  });
})();
