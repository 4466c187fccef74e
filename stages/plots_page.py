"""Stage `plots_page`: the HTML page template `dvc plots show` fills, with Vega, Vega-Lite
and Vega-Embed inlined, so the charts render offline (DVC's own page loads them from a CDN),
and the template of each training's chart (plots/seed_curves.json), which no result decides.

.dvc/config points `plots.html_template` at plots/offline.html. The bundle comes from the
pinned vl-convert-python, so the page is the same on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import vl_convert

from mnist_budget.base.atomic_files import json_bytes, write_all
from mnist_budget.base.errors import StageError
from mnist_budget.report.plot_templates import seed_curves_template
from stages.cli import stage_main

PAGE = Path("plots/offline.html")
SEED_CURVES = Path("plots/seed_curves.json")
# DVC replaces `{plot_divs}` with one <div> + inline <script> calling vegaEmbed per chart;
# the bundle, a classic script in <head>, defines window.vegaEmbed before they run. There is
# no `{scripts}` placeholder: that is where DVC would put its CDN <script> tags.
TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  {{refresh_tag}}
  <title>MNIST under budget: DVC plots</title>
  <script type="text/javascript">
{bundle}
  </script>
  <script type="text/javascript">
    // SVG rather than canvas: sharp when zoomed, and every mark is a DOM node that the
    // browser test can count. A plot with no data (a training's made_on.json, listed under
    // its `plots:` only so that DVC caches the run) comes as an empty spec: left out.
    const embedWithCanvas = window.vegaEmbed;
    window.vegaEmbed = (el, spec, opts) => {{
      if (Object.keys(spec).length === 0) {{
        document.querySelector(el).remove();
        return Promise.resolve();
      }}
      return embedWithCanvas(el, spec, {{renderer: "svg", ...opts}});
    }};
  </script>
  <style>
    body {{ font-family: sans-serif; margin: 1.5em; }}
    table {{ border-spacing: 15px; }}
    img {{ max-width: 760px; }}
  </style>
</head>
<body>
  <h1>MNIST under budget: DVC plots</h1>
  {{plot_divs}}
</body>
</html>
"""


@stage_main
def main() -> None:
    bundle = vl_convert.javascript_bundle()  # assigns vegaEmbed, vegaLite and vega to window
    if "{plot_divs}" in bundle or "{scripts}" in bundle:
        raise StageError("the Vega bundle contains a DVC placeholder; the page would break")
    write_all(
        {PAGE: TEMPLATE.format(bundle=bundle).encode(), SEED_CURVES: json_bytes(seed_curves_template())}
    )
    print(f"plots_page: {PAGE} with the Vega bundle inlined ({len(bundle) // 1024} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
