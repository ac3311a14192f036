/* report.c: the report stage (report.h). */
#include "pipeline/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/json.h"
#include "pipeline/stage.h"
#include "report/buf.h"
#include "report/figures.h"
#include "report/html.h"
#include "report/results.h"

static int write_bytes(const char *dir, const char *stem, const char *ext, const void *d, size_t n) {
  char *path = malloc(strlen(dir) + strlen(stem) + strlen(ext) + 2);
  if (!path) return sc_error_setc(SC_ERR_NOMEM, "report: out of memory");
  sprintf(path, "%s/%s%s", dir, stem, ext);
  int rc = sc_write_file_atomic(path, d, n);
  free(path);
  return rc;
}

/* Renders every figure into images[] and writes it under vis_dir. */
static int render_all(const rep_figures *figs, const char *vis_dir, rep_image *images) {
  int rc = sc_mkdirs(vis_dir);
  sc_progress *pg = rc ? NULL : sc_progress_create("report: figures", figs->n, "figures");
  for (int i = 0; !rc && i < figs->n; i++) {
    rep_image *im = &images[i];
    char *svg = NULL;
    unsigned char *png = NULL;
    rc = rep_fig_svg(figs->v[i].fig, &svg, &im->svg_len);
    if (!rc) rc = rep_fig_png(figs->v[i].fig, &png, &im->png_len);
    im->svg = svg;
    im->png = png;
    if (!rc) rc = write_bytes(vis_dir, figs->v[i].stem, ".svg", svg, im->svg_len);
    if (!rc) rc = write_bytes(vis_dir, figs->v[i].stem, ".png", png, im->png_len);
    sc_progress_set(pg, i + 1);
  }
  if (rc) sc_progress_abort(pg);
  else sc_progress_finish(pg);
  return rc;
}

static void images_free(rep_image *im, int n) {
  for (int i = 0; im && i < n; i++) {
    free((void *)im[i].svg);
    free((void *)im[i].png);
  }
  free(im);
}

/* prepare_report.json, or NULL when absent or unreadable (the page says so). */
static sc_json *load_prepare_report(const char *output_dir) {
  char *p = sc_path_join(output_dir, "data/processed/prepare_report.json");
  sc_json *j = NULL;
  if (p && sc_is_file(p) && sc_json_load(p, (size_t)64 << 20, &j)) j = NULL;
  sc_error_clear();
  free(p);
  return j;
}

static int build_html(const sc_config *cfg, const rep_results *res, const rep_figures *figs,
                      const rep_image *images, rep_buf *page) {
  char hash[SC_STAGE_HASH_LEN] = "";
  int rc = sc_stage_hash(cfg, SC_STAGE_REPORT, hash);
  char *yaml = rc ? NULL : sc_config_yaml(cfg, NULL);
  if (!rc && !yaml) rc = sc_error_setc(SC_ERR_NOMEM, "report: out of memory");
  sc_json *prep = rc ? NULL : load_prepare_report(cfg->output_dir);
  if (!rc) {
    rep_html_in in = {cfg->report.title ? cfg->report.title : "saecap report", res, figs, images,
                      cfg->report.feature_cards, cfg->source, yaml, hash,
                      cfg->model.path, cfg->output_dir, prep};
    rc = rep_html_build(&in, page);
  }
  sc_json_free(prep);
  free(yaml);
  return rc;
}

int sc_report_run(const sc_config *cfg, sc_report_summary *out) {
  memset(out, 0, sizeof *out);
  rep_results res;
  rep_figures figs = {0};
  rep_image *images = NULL;
  rep_buf page = {0};
  char *rep_dir = sc_path_join(cfg->output_dir, "report");
  out->vis_dir = sc_path_join(cfg->output_dir, "visualizations");
  out->html_path = rep_dir ? sc_path_join(rep_dir, "report.html") : NULL;
  if (!out->vis_dir || !out->html_path) {
    free(rep_dir);
    sc_report_summary_free(out);
    return sc_error_setc(SC_ERR_NOMEM, "report: out of memory");
  }
  int rc = rep_results_load(cfg->output_dir, &res);
  if (rc) goto done;
  for (int i = 0; i < REP_N_RESULTS; i++) {
    if (res.r[i].state == REP_RES_OK) out->n_results++;
    else out->n_absent++;
    if (res.r[i].state == REP_RES_BAD) sc_warn("report: results/%s.json: %s", res.r[i].stem, res.r[i].why);
  }
  rc = rep_figures_build(&res, cfg->output_dir, &figs);
  if (!rc && !(images = calloc((size_t)(figs.n ? figs.n : 1), sizeof *images)))
    rc = sc_error_setc(SC_ERR_NOMEM, "report: out of memory");
  if (!rc) rc = render_all(&figs, out->vis_dir, images);
  if (!rc) rc = build_html(cfg, &res, &figs, images, &page);
  if (!rc) rc = sc_mkdirs(rep_dir);
  if (!rc) rc = sc_write_file_atomic(out->html_path, page.p, page.len);
  out->n_figures = figs.n;
  out->html_bytes = page.len;
done:
  images_free(images, figs.n);
  rep_figures_free(&figs);
  rep_results_free(&res);
  rep_buf_free(&page);
  free(rep_dir);
  if (rc) sc_report_summary_free(out);
  return rc;
}

void sc_report_summary_free(sc_report_summary *s) {
  if (!s) return;
  free(s->html_path);
  free(s->vis_dir);
  s->html_path = s->vis_dir = NULL;
}
