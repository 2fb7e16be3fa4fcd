/* semdict_onnx: the interaction of a semantic dictionary output.
 *
 * The HTML already shows the first selection of the first basis (rendered in Python), so a
 * page works without this script. The script adds hover to select, click to pin, arrow keys
 * to move, the switch between bases, the group overlay (hovering an entry shows its region),
 * the cell lines and the heat map, and shows the controls and the keys hint, which do nothing
 * without it. It is defined once per window (notebook outputs share one), and each output
 * mounts its own root by its unique id, so several dictionaries never share state. Bars,
 * labels and tooltips are computed exactly as _render.py and _html.py compute them.
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

  /* Empty `box` and give it one new element of the given tag and class. */
  function replaceContent(box, tag, className) {
    while (box.firstChild) {
      box.removeChild(box.firstChild);
    }
    var element = document.createElement(tag);
    element.className = className;
    if (tag === "img") {
      element.alt = "";
    }
    box.appendChild(element);
    return element;
  }

  /* Show one direction's picture in an entry, the way the Python renderer does. */
  function showSprite(entry, sprites, channel) {
    var box = entry.querySelector(".sd-sprite");
    box.style.width = sprites.size + "px";
    box.style.height = sprites.size + "px";
    if (sprites.kind === "none") {
      var number =
        box.querySelector(".sd-sprite-number") || replaceContent(box, "span", "sd-sprite-number");
      number.textContent = String(channel);
      return;
    }
    var img = box.querySelector(".sd-sprite-img") || replaceContent(box, "img", "sd-sprite-img");
    var size = sprites.size;
    if (sprites.kind === "embedded") {
      img.src = safeImageUrl(sprites.images[String(channel)]);
      img.style.left = "0px";
      img.style.top = "0px";
      img.style.width = size + "px";
      return;
    }
    img.src = safeImageUrl(sprites.url);
    img.style.left = -size * (channel % sprites.per_row) + "px";
    img.style.top = -size * Math.floor(channel / sprites.per_row) + "px";
    img.style.width = size * sprites.per_row + "px";
  }

  /* A number to 3 significant digits for a person to read (as _html.readable_number). */
  function readable(value) {
    return String(Number(value.toPrecision(3)));
  }

  /* A bar's width, percentage and label for one value of a basis (as _html.bar_parts). */
  function barParts(basis, channel, value) {
    var reference = basis.refs ? basis.refs[channel] : basis.ref;
    var ratio = reference > 0 ? value / reference : 0;
    var percent = Math.round(100 * ratio);
    var label = basis.scale === "raw" ? readable(value) : percent + "%";
    return { width: Math.min(100, 100 * ratio).toFixed(2), percent: percent, label: label };
  }

  function mount(rootId) {
    var root = document.getElementById(rootId);
    if (!root || root.hasAttribute("data-mounted")) {
      return;
    }
    var data = JSON.parse(root.querySelector("script.sd-data").textContent);
    var stage = root.querySelector(".sd-stage");
    var list = root.querySelector(".sd-entries");
    var template = list.querySelector(".sd-entry").cloneNode(true);
    var position = root.querySelector(".sd-pos");
    var heat = root.querySelector(".sd-heat");
    var heatNote = root.querySelector(".sd-heat-note");
    var overlayButton = root.querySelector(".sd-toggle-overlay");
    var heatButton = root.querySelector(".sd-toggle-heat");
    var linesButton = root.querySelector(".sd-toggle-lines");
    var basisButtons = root.querySelectorAll(".sd-basis-button");
    var cells = new Array(data.rows * data.cols);
    Array.prototype.forEach.call(root.querySelectorAll(".sd-cell"), function (cell) {
      var row = Number(cell.getAttribute("data-row"));
      var col = Number(cell.getAttribute("data-col"));
      cells[row * data.cols + col] = cell;
    });
    var state = {
      row: data.start[0],
      col: data.start[1],
      pinned: false,
      basis: 0,
      overlay: true,
      heat: false,
      lines: true,
      highlight: null,
    };

    /* As many entry elements as the basis shows per position. */
    function entriesFor(basis) {
      var entries = list.querySelectorAll(".sd-entry");
      for (var extra = entries.length - 1; extra >= basis.k; extra--) {
        list.removeChild(entries[extra]);
      }
      for (var missing = entries.length; missing < basis.k; missing++) {
        var entry = template.cloneNode(true);
        entry.setAttribute("data-rank", String(missing));
        list.appendChild(entry);
      }
      return list.querySelectorAll(".sd-entry");
    }

    /* Show the overlay layer that fits the basis, the toggle and the hovered entry. */
    function showLayers() {
      var basis = data.bases[state.basis];
      var hasOverlay = Boolean(basis.colours);
      Array.prototype.forEach.call(root.querySelectorAll(".sd-overlay"), function (layer) {
        var mine = Number(layer.getAttribute("data-basis-index")) === state.basis;
        var group = layer.getAttribute("data-group");
        var visible =
          mine &&
          (state.highlight !== null
            ? group === String(state.highlight)
            : state.overlay && group === "all");
        layer.hidden = !visible;
      });
      if (overlayButton) {
        overlayButton.hidden = !hasOverlay;
        overlayButton.setAttribute("aria-pressed", state.overlay ? "true" : "false");
      }
      root.setAttribute("data-overlay", hasOverlay ? (state.overlay ? "on" : "off") : "none");
      if (heat) {
        heat.hidden = !state.heat;
        heatNote.hidden = !state.heat;
        heatButton.setAttribute("aria-pressed", state.heat ? "true" : "false");
      }
      root.setAttribute("data-heat", state.heat ? "on" : "off");
      if (linesButton) {
        linesButton.setAttribute("aria-pressed", state.lines ? "true" : "false");
      }
      root.setAttribute("data-lines", state.lines ? "on" : "off");
      if (state.highlight !== null) {
        root.setAttribute("data-highlight", String(state.highlight));
      } else {
        root.removeAttribute("data-highlight");
      }
    }

    function render() {
      var basis = data.bases[state.basis];
      var base = (state.row * data.cols + state.col) * basis.k;
      Array.prototype.forEach.call(entriesFor(basis), function (entry, rank) {
        var channel = basis.channels[base + rank];
        var value = basis.values[base + rank];
        var bar = barParts(basis, channel, value);
        entry.setAttribute("data-channel", String(channel));
        entry.setAttribute("data-value", String(value));
        entry.title = fill(basis.tooltip, { channel: channel, value: value, percent: bar.percent });
        entry.querySelector(".sd-unit").textContent = basis.unit;
        entry.querySelector(".sd-channel").textContent = String(channel);
        entry.querySelector(".sd-bar-fill").style.width = bar.width + "%";
        entry.querySelector(".sd-percent").textContent = bar.label;
        var swatch = entry.querySelector(".sd-swatch");
        swatch.hidden = !basis.colours;
        swatch.style.background = basis.colours ? basis.colours[channel] : "transparent";
        showSprite(entry, basis.sprites, channel);
      });
      position.textContent = fill(data.position, { row: state.row, col: state.col });
      root.setAttribute("data-selected-row", String(state.row));
      root.setAttribute("data-selected-col", String(state.col));
      root.setAttribute("data-pinned", state.pinned ? "true" : "false");
    }

    /* Switch the dictionary to basis `index`: entries, caption, notes, buttons, layers. */
    function useBasis(index) {
      state.basis = index;
      state.highlight = null;
      var basis = data.bases[index];
      root.querySelector(".sd-k").textContent = String(basis.k);
      root.querySelector(".sd-size").textContent = String(basis.size);
      root.querySelector(".sd-units").textContent = basis.units;
      root.querySelector(".sd-scale-note").textContent = basis.note;
      var spriteNote = root.querySelector(".sd-sprite-note");
      spriteNote.textContent = basis.sprite_note;
      spriteNote.hidden = !basis.sprite_note;
      Array.prototype.forEach.call(basisButtons, function (button) {
        var pressed = Number(button.getAttribute("data-basis-index")) === index;
        button.setAttribute("aria-pressed", pressed ? "true" : "false");
      });
      root.setAttribute("data-basis", basis.name);
      root.setAttribute("data-basis-index", String(index));
      root.setAttribute("data-scale", basis.scale);
      root.setAttribute("data-top-k", String(basis.k));
      render();
      showLayers();
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

    /* Hovering an entry of a basis with an overlay shows that direction's region alone. */
    list.addEventListener("mouseover", function (event) {
      var entry = event.target && event.target.closest ? event.target.closest(".sd-entry") : null;
      var basis = data.bases[state.basis];
      var channel = entry ? Number(entry.getAttribute("data-channel")) : null;
      var highlight = entry && basis.colours ? channel : null;
      if (highlight !== state.highlight) {
        state.highlight = highlight;
        showLayers();
      }
    });

    list.addEventListener("mouseleave", function () {
      if (state.highlight !== null) {
        state.highlight = null;
        showLayers();
      }
    });

    Array.prototype.forEach.call(basisButtons, function (button) {
      button.addEventListener("click", function () {
        useBasis(Number(button.getAttribute("data-basis-index")));
      });
    });

    if (overlayButton) {
      overlayButton.addEventListener("click", function () {
        state.overlay = !state.overlay;
        showLayers();
      });
    }

    if (heatButton) {
      heatButton.addEventListener("click", function () {
        state.heat = !state.heat;
        showLayers();
      });
    }

    if (linesButton) {
      linesButton.addEventListener("click", function () {
        state.lines = !state.lines;
        showLayers();
      });
    }

    /* What only works with this script shows once it runs. */
    Array.prototype.forEach.call(root.querySelectorAll(".sd-controls, .sd-hint"), function (part) {
      part.hidden = false;
    });
    root.setAttribute("data-mounted", "true");
    select(state.row, state.col, false);
    showLayers();
  }

  window[API] = { mount: mount };
})();
