// The school's page: send a file straight to the store, then poll for its verdict.
// School-supplied text is only ever written with textContent, never as HTML.
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.dataset.csrf;
  var year = Number(body.dataset.year);
  var maxBytes = Number(body.dataset.maxBytes);
  var state = document.getElementById("upload-state");
  var POLL_MS = 1000;
  var POLL_LIMIT = 600;

  function say(text, kind) {
    state.textContent = text;
    state.className = kind || "processing";
  }

  function api(path, payload) {
    var options = { credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (payload !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    return fetch(path, options).then(function (reply) {
      return reply.json().then(function (document) {
        if (!reply.ok) { throw new Error(document.error_zh || ("HTTP " + reply.status)); }
        return document;
      });
    });
  }

  function storeRefusal(status, text) {
    var code = (/<Code>([^<]*)<\/Code>/.exec(text) || [])[1] || "";
    if (code === "EntityTooLarge") { return "文件超过大小上限，存储拒绝了这次上传。"; }
    if (code === "AccessDenied") { return "存储拒绝了这次上传（只能上传到本校的文件夹）。"; }
    try { var document = JSON.parse(text); if (document.error_zh) { return document.error_zh; } }
    catch (ignored) { /* not JSON: an S3 answer */ }
    return "上传失败（HTTP " + status + (code ? "，" + code : "") + "）。";
  }

  function send(ticket, file) {
    var form = new FormData();
    Object.keys(ticket.fields).forEach(function (name) { form.append(name, ticket.fields[name]); });
    form.append("file", file);  // S3 wants the file last
    var sameOrigin = ticket.url.charAt(0) === "/";
    var options = { method: "POST", body: form };
    if (sameOrigin) { options.headers = { "X-CSRF-Token": csrf }; options.credentials = "same-origin"; }
    return fetch(ticket.url, options).then(function (reply) {
      if (reply.ok) { return ticket.key; }
      return reply.text().then(function (text) { throw new Error(storeRefusal(reply.status, text)); });
    }, function () {
      // the store took the POST but its answer was not readable here (no CORS): ask the portal
      return ticket.key;
    });
  }

  function upload(file) {
    if (!file) { return; }
    if (file.size > maxBytes) {
      say("文件超过 " + Math.round(maxBytes / 1048576) + " MB 上限，请拆分后上传。", "rejected");
      return;
    }
    var dataset = document.getElementById("dataset").value;
    document.getElementById("verdict").classList.add("hidden");
    say("正在上传 " + file.name + " ……");
    api("/api/ticket", { year: year, dataset: dataset, file_name: file.name, size_bytes: file.size })
      .then(function (ticket) { return send(ticket, file); })
      .then(function (key) { return api("/api/uploaded", { key: key }); })
      .then(function (sent) {
        say("已上传，正在检查（处理中）……");
        poll(sent.key, sent.submission, 0);
      })
      .catch(function (error) { say(error.message, "rejected"); });
  }

  function poll(key, submission, tries) {
    var query = "?key=" + encodeURIComponent(key) + "&submission=" + encodeURIComponent(submission);
    api("/api/status" + query).then(function (status) {
      if (status.state === "processing") {
        if (tries >= POLL_LIMIT) { say("仍在处理中，请稍后刷新页面查看结果。"); return; }
        setTimeout(function () { poll(key, submission, tries + 1); }, POLL_MS);
        return;
      }
      say("");
      show(status);
      if (status.collection) { showCollection(status.collection); }
      refreshHistory();
    }).catch(function (error) { say(error.message, "rejected"); });
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function show(status) {
    var title = document.getElementById("verdict-title");
    title.textContent = status.verdict_zh;
    title.className = status.outcome;
    document.getElementById("verdict-counts").textContent =
      "（错误 " + status.error_count + " 个，警告 " + status.warning_count + " 个）";
    var link = document.getElementById("workbook-link");
    if (status.workbook_url) { link.href = status.workbook_url; link.classList.remove("hidden"); }
    else { link.classList.add("hidden"); }
    var table = document.getElementById("findings");
    var rows = table.querySelector("tbody");
    rows.textContent = "";
    status.findings.forEach(function (finding) {
      var row = document.createElement("tr");
      row.className = "finding " + finding.severity;
      cell(row, finding.severity_zh);
      cell(row, finding.sheet);
      cell(row, finding.row_number);
      cell(row, finding.header);
      cell(row, finding.value);
      cell(row, [finding.message_zh, finding.detail_zh].filter(Boolean).join("："));
      cell(row, finding.fix_zh);
      rows.appendChild(row);
    });
    table.classList.toggle("hidden", status.findings.length === 0);
    var cut = document.getElementById("findings-cut");
    cut.textContent = status.findings_cut ? "另有 " + status.findings_cut + " 条未列出，见标注后的工作簿。" : "";
    cut.classList.toggle("hidden", !status.findings_cut);
    var frame = document.getElementById("report-frame");
    if (status.report_url) { frame.src = status.report_url; }
    document.getElementById("verdict").classList.remove("hidden");
  }

  // the ladder after a verdict: state word, next step, whether sign-off is possible now
  function showCollection(collection) {
    var word = document.getElementById("state-word");
    word.textContent = collection.state_zh;
    word.className = "state " + collection.state;
    document.getElementById("next-step").textContent = "下一步：" + collection.next_step_zh;
    var refusals = document.getElementById("signoff-refusals");
    if (refusals) {
      var list = refusals.querySelector("ul");
      list.textContent = "";
      collection.refusals_zh.forEach(function (reason) {
        var item = document.createElement("li");
        item.textContent = reason;
        list.appendChild(item);
      });
      refusals.classList.toggle("hidden", collection.refusals_zh.length === 0);
      ["signoff-confirm", "signoff-submit"].forEach(function (id) {
        var control = document.getElementById(id);
        if (control) { control.disabled = !collection.can_sign_off; }
      });
    }
  }

  function refreshHistory() {
    api("/api/history?year=" + year).then(function (history) {
      var rows = document.querySelector("#history tbody");
      rows.textContent = "";
      history.uploads.forEach(function (upload) {
        var row = document.createElement("tr");
        cell(row, upload.uploaded_at);
        cell(row, upload.datasets);
        cell(row, upload.file);
        cell(row, upload.verdict_zh).className = upload.outcome;
        cell(row, upload.error_count);
        cell(row, upload.warning_count);
        cell(row, upload.is_current ? "是" : "");
        var links = cell(row, "");
        upload.links.forEach(function (item) {
          var anchor = document.createElement("a");
          anchor.href = item.href;
          anchor.textContent = item.label;
          links.appendChild(anchor);
          links.appendChild(document.createTextNode(" "));
        });
        rows.appendChild(row);
      });
    });
  }

  // a 情况说明与确认 form was just sent: follow the object it wrote like an upload
  if (body.dataset.pendingKey && body.dataset.pendingSubmission) {
    say("已提交，正在检查（处理中）……");
    poll(body.dataset.pendingKey, body.dataset.pendingSubmission, 0);
  }

  var input = document.getElementById("file-input");
  input.addEventListener("change", function () {
    upload(input.files[0]);
    input.value = "";
  });
  var zone = document.getElementById("dropzone");
  zone.addEventListener("dragover", function (event) { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("over");
    upload(event.dataTransfer.files[0]);
  });
}());
