/* semdict_onnx: the interaction of a semantic dictionary output.
 *
 * The HTML already shows the first selection (rendered in Python), so a page works without
 * this script. The script adds hover to select, click to pin, arrow keys to move. It is
 * defined once per window (notebook outputs share one), and each output mounts its own root
 * by its unique id, so several dictionaries on one page never share state.
 */
(function () {
  "use strict";

  var API = "semdictOnnx1";
  if (window[API]) {
    return;
  }

  var KEY_STEPS = {
    ArrowUp: [-1, 0],
    ArrowDown: [1, 0],
    ArrowLeft: [0, -1],
    ArrowRight: [0, 1],
  };

  /* Replace {name} fields of a template written by Python with the given values. */
  function fill(template, fields) {
    return template.replace(/\{(\w+)\}/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(fields, key) ? String(fields[key]) : whole;
    });
  }

  /* Only http, https and data:image URLs ever become an image source. */
  function safeImageUrl(url) {
    return /^(https?:|data:image\/)/i.test(String(url)) ? String(url) : "";
  }

  /* Show one channel's picture in an entry, the way the Python renderer does. */
  function showSprite(entry, sprites, channel) {
    if (sprites.kind === "none") {
      entry.querySelector(".sd-sprite-number").textContent = String(channel);
      return;
    }
    var img = entry.querySelector(".sd-sprite-img");
    if (sprites.kind === "embedded") {
      img.src = safeImageUrl(sprites.images[String(channel)]);
      return;
    }
    var size = sprites.size;
    img.src = safeImageUrl(sprites.url);
    img.style.left = -size * (channel % sprites.per_row) + "px";
    img.style.top = -size * Math.floor(channel / sprites.per_row) + "px";
  }

  function mount(rootId) {
    var root = document.getElementById(rootId);
    if (!root || root.hasAttribute("data-mounted")) {
      return;
    }
    var data = JSON.parse(root.querySelector("script.sd-data").textContent);
    var stage = root.querySelector(".sd-stage");
    var entries = root.querySelectorAll(".sd-entry");
    var position = root.querySelector(".sd-pos");
    var cells = new Array(data.rows * data.cols);
    Array.prototype.forEach.call(root.querySelectorAll(".sd-cell"), function (cell) {
      var row = Number(cell.getAttribute("data-row"));
      var col = Number(cell.getAttribute("data-col"));
      cells[row * data.cols + col] = cell;
    });
    var state = { row: data.start[0], col: data.start[1], pinned: false, basis: 0 };

    function render() {
      var basis = data.bases[state.basis];
      var base = (state.row * data.cols + state.col) * data.k;
      Array.prototype.forEach.call(entries, function (entry, rank) {
        var channel = basis.channels[base + rank];
        var value = basis.values[base + rank];
        var ratio = basis.max > 0 ? value / basis.max : 0;
        var percent = Math.round(100 * ratio);
        entry.setAttribute("data-channel", String(channel));
        entry.setAttribute("data-value", String(value));
        entry.title = fill(data.tooltip, { channel: channel, value: value, percent: percent });
        entry.querySelector(".sd-channel").textContent = String(channel);
        entry.querySelector(".sd-bar-fill").style.width = (100 * ratio).toFixed(2) + "%";
        entry.querySelector(".sd-percent").textContent = percent + "%";
        showSprite(entry, basis.sprites, channel);
      });
      position.textContent = fill(data.position, { row: state.row, col: state.col });
      root.setAttribute("data-selected-row", String(state.row));
      root.setAttribute("data-selected-col", String(state.col));
      root.setAttribute("data-pinned", state.pinned ? "true" : "false");
    }

    function select(row, col, pinned) {
      var previous = cells[state.row * data.cols + state.col];
      if (previous) {
        previous.classList.remove("sd-selected");
      }
      state.row = Math.max(0, Math.min(data.rows - 1, row));
      state.col = Math.max(0, Math.min(data.cols - 1, col));
      state.pinned = pinned;
      cells[state.row * data.cols + state.col].classList.add("sd-selected");
      render();
    }

    function cellOf(event) {
      var target = event.target;
      return target && target.closest ? target.closest(".sd-cell") : null;
    }

    stage.addEventListener("mouseover", function (event) {
      var cell = cellOf(event);
      if (cell && !state.pinned) {
        select(Number(cell.getAttribute("data-row")), Number(cell.getAttribute("data-col")), false);
      }
    });

    stage.addEventListener("click", function (event) {
      var cell = cellOf(event);
      if (!cell) {
        return;
      }
      var row = Number(cell.getAttribute("data-row"));
      var col = Number(cell.getAttribute("data-col"));
      var again = state.pinned && row === state.row && col === state.col;
      select(row, col, !again);
      stage.focus({ preventScroll: true });
    });

    stage.addEventListener("keydown", function (event) {
      var step = KEY_STEPS[event.key];
      if (step) {
        select(state.row + step[0], state.col + step[1], true);
      } else if (event.key === "Escape") {
        select(state.row, state.col, false);
      } else if (event.key === "Enter" || event.key === " ") {
        select(state.row, state.col, !state.pinned);
      } else {
        return;
      }
      event.preventDefault();
    });

    root.setAttribute("data-mounted", "true");
    select(state.row, state.col, false);
  }

  window[API] = { mount: mount };
})();
