// Switchboard console: every panel refreshes itself every 2 s (fetch + replace), and the
// Approve / Reject buttons are sent without leaving the page. No framework, no build step.
"use strict";

(function () {
  const INTERVAL_MS = 2000;
  const TIMEOUT_MS = 15000;
  const FETCH_HEADERS = { "X-Console-Fetch": "1", Accept: "text/html" };
  const statusLine = document.getElementById("refresh-status");
  const noticeBox = document.getElementById("notice");
  const panels = Array.from(document.querySelectorAll("[data-panel]"));
  const shown = new Map(); // panel name -> the HTML it shows
  const failed = new Map(); // panel name -> why its last refresh failed
  const fresh = new Map(); // panel name -> when it last refreshed
  const timers = new Map(); // panel name -> its next refresh
  const loadedAt = new Date();
  let lastSuccess = loadedAt;
  let stopped = false;

  class SessionEnded extends Error {}

  function clock(date) {
    return date.toLocaleTimeString([], { hour12: false });
  }

  function report() {
    if (stopped) {
      return;
    }
    if (failed.size === 0) {
      statusLine.textContent = "Last refresh " + clock(lastSuccess);
      statusLine.classList.remove("failed");
      return;
    }
    const what = Array.from(failed, ([name, reason]) => {
      const since = fresh.get(name) || loadedAt;
      return name + ": " + reason + ", showing data from " + clock(since);
    }).join("; ");
    statusLine.textContent = "Refresh failed at " + clock(new Date()) + " (" + what + ")";
    statusLine.classList.add("failed");
  }

  function sessionEnded() {
    stopped = true;
    timers.forEach((timer) => clearTimeout(timer));
    statusLine.classList.add("failed");
    statusLine.textContent = "Your session has ended: ";
    const link = document.createElement("a");
    link.href = "/console/login";
    link.textContent = "log in again";
    statusLine.appendChild(link);
  }

  async function get(url) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      return await fetch(url, {
        headers: FETCH_HEADERS,
        credentials: "same-origin",
        cache: "no-store",
        signal: abort.signal,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  async function load(panel) {
    const name = panel.dataset.panel;
    const response = await get("/console/panels/" + encodeURIComponent(name));
    if (response.status === 401) {
      throw new SessionEnded();
    }
    if (!response.ok) {
      throw new Error("HTTP " + response.status);
    }
    const html = await response.text();
    // Replace only what changed: a button under the pointer stays where it is.
    if (shown.get(name) !== html) {
      panel.querySelector(".panel-body").innerHTML = html;
      shown.set(name, html);
    }
  }

  // Each panel on its own timer: a slow one (a provider's health probe) holds up no other.
  async function refresh(panel) {
    const name = panel.dataset.panel;
    clearTimeout(timers.get(name));
    try {
      await load(panel);
      failed.delete(name);
      lastSuccess = new Date();
      fresh.set(name, lastSuccess);
    } catch (error) {
      if (error instanceof SessionEnded) {
        sessionEnded();
        return;
      }
      const reason = error.name === "AbortError" ? "timed out" : error.message || String(error);
      failed.set(name, name + ": " + reason);
    }
    report();
    if (!stopped) {
      timers.set(name, setTimeout(() => refresh(panel), INTERVAL_MS));
    }
  }

  function refreshAll() {
    panels.forEach(refresh);
  }

  function showNotice(ok, text) {
    const line = document.createElement("p");
    line.className = "notice " + (ok ? "ok" : "error");
    line.setAttribute("role", "alert");
    line.textContent = text;
    noticeBox.replaceChildren(line);
  }

  async function send(form) {
    const buttons = Array.from(form.querySelectorAll("button"));
    buttons.forEach((button) => {
      button.disabled = true;
    });
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: FETCH_HEADERS,
        credentials: "same-origin",
      });
      if (response.status === 401) {
        sessionEnded();
        return;
      }
      const type = response.headers.get("content-type") || "";
      if (type.startsWith("text/html")) {
        noticeBox.innerHTML = await response.text(); // the server's escaped notice
      } else {
        showNotice(false, "The gateway answered HTTP " + response.status + ".");
      }
    } catch (error) {
      showNotice(false, "Could not send the decision: " + (error.message || String(error)));
    } finally {
      buttons.forEach((button) => {
        button.disabled = false;
      });
    }
    refreshAll();
  }

  // Delegated: panels are replaced under us, their forms with them.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-fetch")) {
      event.preventDefault();
      send(form);
    }
  });

  panels.forEach((panel) => {
    timers.set(panel.dataset.panel, setTimeout(() => refresh(panel), INTERVAL_MS));
  });
})();
