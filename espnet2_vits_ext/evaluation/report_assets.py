"""The listening report's static parts: its style sheet and the script that checks its media.

Inline in the page, so the report folder needs nothing from the network.
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d1d1f; background: #fafafa; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #555; font-size: 0.9rem; }
code { font-size: 0.85rem; background: #eee; padding: 0.1rem 0.3rem; border-radius: 3px; }
.status { padding: 0.5rem 0.8rem; border-radius: 4px; background: #eee; }
.status.good { background: #e3f4e1; }
.status.bad { background: #fbe1e1; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f0f0f0; }
td.name, th.name, td.meaning { text-align: left; }
td.name { white-space: nowrap; }
td.meaning { color: #555; }
section.utterance { background: #fff; border: 1px solid #ddd; border-radius: 6px;
                    padding: 0.6rem 1rem 1rem; margin: 1rem 0; }
section.utterance h3 { margin: 0.2rem 0; }
.text { font-style: italic; margin: 0.3rem 0 0.6rem; }
.heard { font-size: 0.85rem; color: #555; margin: 0.1rem 0; }
.players { display: flex; gap: 2rem; flex-wrap: wrap; }
.players figure { margin: 0; }
.players figcaption { font-size: 0.85rem; color: #555; }
.figures { display: flex; gap: 0.5rem; flex-wrap: wrap; align-items: flex-start; margin-top: 0.5rem; }
.figures img { max-width: 100%; border: 1px solid #eee; }
img.curves { max-width: 100%; }
"""

# Checks every <audio> and <img> after loading and reports the outcome at the top of the page;
# each element also gets data-media-state (ok / error / pending) and audio data-duration.
MEDIA_CHECK_SCRIPT = """
(function () {
  const status = document.getElementById("media-status");
  const audios = Array.from(document.querySelectorAll("audio"));
  const images = Array.from(document.querySelectorAll("img"));
  function update() {
    let ready = 0;
    const failed = [];
    for (const audio of audios) {
      let state = "pending";
      if (audio.error) state = "error";
      else if (audio.readyState >= 1 && audio.duration > 0) state = "ok";
      audio.dataset.mediaState = state;
      audio.dataset.duration = isFinite(audio.duration) ? audio.duration.toFixed(3) : "";
      if (state === "ok") ready += 1;
      if (state === "error") failed.push(audio.getAttribute("src"));
    }
    for (const image of images) {
      let state = "pending";
      if (image.complete) state = image.naturalWidth > 0 ? "ok" : "error";
      image.dataset.mediaState = state;
      if (state === "error") failed.push(image.getAttribute("src"));
    }
    status.dataset.audioTotal = audios.length;
    status.dataset.audioReady = ready;
    status.dataset.failed = failed.length;
    if (failed.length > 0) {
      status.className = "status bad";
      status.textContent = failed.length + " file(s) failed to load: " + failed.join(", ");
    } else {
      status.className = ready === audios.length ? "status good" : "status";
      status.textContent = ready + " of " + audios.length + " audio files ready to play.";
    }
  }
  for (const audio of audios) {
    audio.addEventListener("loadedmetadata", update);
    audio.addEventListener("error", update);
  }
  for (const image of images) {
    image.addEventListener("load", update);
    image.addEventListener("error", update);
  }
  window.addEventListener("load", update);
  update();
})();
"""
