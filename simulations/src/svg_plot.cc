#include "svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>

namespace edgefl::simulations {
namespace {

constexpr double kWidth = 640, kHeight = 400;
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b"};

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Num(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", v);
  return buffer;
}

std::string Px(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

}  // namespace

std::string RenderSvg(const LinePlot& plot) {
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const PlotSeries& s : plot.series) {
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_min = std::min(x_min, s.x[i]);
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  }
  if (!std::isfinite(x_min)) x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto sx = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * plot_w; };
  auto sy = [&](double y) { return kTop + plot_h - (y - y_min) / (y_max - y_min) * plot_h; };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" "
                    "font-family=\"sans-serif\" font-size=\"12\">\n"
                    "<rect width=\"640\" height=\"400\" fill=\"white\"/>\n";
  svg += "<text x=\"320\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
         Escape(plot.title) + "</text>\n";
  svg += "<rect x=\"" + Px(kLeft) + "\" y=\"" + Px(kTop) + "\" width=\"" + Px(plot_w) +
         "\" height=\"" + Px(plot_h) + "\" fill=\"none\" stroke=\"black\"/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double x = x_min + (x_max - x_min) * t / 4.0;
    const double y = y_min + (y_max - y_min) * t / 4.0;
    svg += "<line x1=\"" + Px(sx(x)) + "\" y1=\"" + Px(kTop) + "\" x2=\"" + Px(sx(x)) +
           "\" y2=\"" + Px(kTop + plot_h) + "\" stroke=\"#ddd\"/>\n";
    svg += "<line x1=\"" + Px(kLeft) + "\" y1=\"" + Px(sy(y)) + "\" x2=\"" +
           Px(kLeft + plot_w) + "\" y2=\"" + Px(sy(y)) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + Px(sx(x)) + "\" y=\"" + Px(kTop + plot_h + 16) +
           "\" text-anchor=\"middle\">" + Num(x) + "</text>\n";
    svg += "<text x=\"" + Px(kLeft - 6) + "\" y=\"" + Px(sy(y) + 4) +
           "\" text-anchor=\"end\">" + Num(y) + "</text>\n";
  }
  svg += "<text x=\"" + Px(kLeft + plot_w / 2) + "\" y=\"" + Px(kHeight - 10) +
         "\" text-anchor=\"middle\">" + Escape(plot.x_label) + "</text>\n";
  svg += "<text transform=\"translate(16," + Px(kTop + plot_h / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + Escape(plot.y_label) + "</text>\n";
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const PlotSeries& s = plot.series[k];
    const char* colour = kColours[k % std::size(kColours)];
    std::string points;
    auto flush = [&] {
      if (!points.empty()) {
        svg += "<polyline fill=\"none\" stroke=\"" + std::string(colour) +
               "\" stroke-width=\"1.5\" points=\"" + points + "\"/>\n";
      }
      points.clear();
    };
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;  // skip unevaluated
      points += Px(sx(s.x[i])) + "," + Px(sy(s.y[i])) + " ";
    }
    flush();
    svg += "<text x=\"" + Px(kLeft + 8) + "\" y=\"" + Px(kTop + 16 + 14.0 * k) + "\" fill=\"" +
           colour + "\">" + Escape(s.name) + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace edgefl::simulations
