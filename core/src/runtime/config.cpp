#include "baobab/config.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <fstream>
#include <sstream>

#include "baobab/error.hpp"
#include "baobab/topology.hpp"

namespace baobab {

const LinkParams& CostModel::at(int L) const {
  if (L < 0) L = 0;
  return link[std::min<size_t>(static_cast<size_t>(L), link.size() - 1)];
}

double CostModel::node_link_beta(int r) const {
  if (r >= 0 && static_cast<size_t>(r) < node_beta.size() && node_beta[r] > 0) return node_beta[r];
  return at(1).beta;
}

bool CostModel::uneven_links(const std::vector<int>& ranks) const {
  if (node_beta.empty() || ranks.size() < 2) return false;
  double lo = node_link_beta(ranks[0]), hi = lo;
  for (int r : ranks) {
    lo = std::min(lo, node_link_beta(r));
    hi = std::max(hi, node_link_beta(r));
  }
  return hi > 1.1 * lo;
}

CostModel CostModel::defaults(int levels) {
  // Conservative defaults for a modern cluster: shared memory inside a node,
  // a 100-200 Gbit/s fabric between nodes, and slower links above the switch.
  CostModel m;
  m.link.push_back({0.5e-6, 1.0 / 6e9});
  m.link.push_back({3.0e-6, 1.0 / 12e9});
  for (int L = 2; L <= levels; ++L) m.link.push_back({5.0e-6 * (L - 1), 1.0 / (6e9 / (L - 1))});
  return m;
}

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

double parse_double(const std::string& name, const std::string& v) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw InvalidArgument(name + "='" + v + "' is not a number");
  return d;
}

size_t parse_bytes(const std::string& name, const std::string& v) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  std::string unit(end);
  double mult = 1;
  if (unit == "" || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else throw InvalidArgument(name + "='" + v + "': unknown unit '" + unit + "' (use K, M or G)");
  if (v.empty() || d <= 0) throw InvalidArgument(name + "='" + v + "' must be a positive size");
  return static_cast<size_t>(d * mult);
}

}  // namespace

std::string default_tuning_path() {
  std::string xdg = env("XDG_CONFIG_HOME");
  std::string home = env("HOME");
  if (!xdg.empty()) return xdg + "/baobab/tuning.conf";
  if (!home.empty()) return home + "/.config/baobab/tuning.conf";
  return "baobab-tuning.conf";
}

std::vector<std::pair<std::string, double>> read_tuning_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InvalidArgument("cannot open tuning file '" + path + "'");
  std::vector<std::pair<std::string, double>> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    auto eq = line.find('=');
    auto strip = [](std::string s) {
      size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    if (strip(line).empty()) continue;
    if (eq == std::string::npos)
      throw InvalidArgument("tuning file '" + path + "' line " + std::to_string(lineno) + ": expected key = value");
    std::string key = strip(line.substr(0, eq)), val = strip(line.substr(eq + 1));
    out.emplace_back(key, parse_double(path + ":" + std::to_string(lineno) + " " + key, val));
  }
  return out;
}

void Config::set_algos(const std::string& spec) {
  std::istringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos)
      throw InvalidArgument("BAOBAB_ALGO='" + spec + "': expected COLLECTIVE=ALGORITHM, got '" + item + "'");
    Coll c = coll_from_name(item.substr(0, eq));
    algo[static_cast<size_t>(c)] = item.substr(eq + 1);
  }
}

Config Config::from_env(bool load_tuning) {
  Config c;
  if (auto v = env("BAOBAB_TIMEOUT"); !v.empty()) {
    c.timeout = parse_double("BAOBAB_TIMEOUT", v);
    if (c.timeout <= 0) throw InvalidArgument("BAOBAB_TIMEOUT must be positive");
  }
  if (auto v = env("BAOBAB_CHECK"); !v.empty()) c.check = !(v == "0" || v == "off" || v == "no" || v == "false");
  c.topology = env("BAOBAB_TOPOLOGY");
  if (auto v = env("BAOBAB_ALGO"); !v.empty()) c.set_algos(v);
  if (auto v = env("BAOBAB_SEGMENT"); !v.empty()) c.segment_bytes = parse_bytes("BAOBAB_SEGMENT", v);
  if (auto v = env("BAOBAB_WINDOW"); !v.empty()) {
    c.window = static_cast<int>(parse_double("BAOBAB_WINDOW", v));
    if (c.window < 1) throw InvalidArgument("BAOBAB_WINDOW must be at least 1");
  }
  c.tuning_file = env("BAOBAB_TUNING");
  if (!load_tuning) {
    c.tuning_file.clear();
    return c;
  }
  bool explicit_file = !c.tuning_file.empty();
  if (!explicit_file) c.tuning_file = default_tuning_path();
  try {
    std::ifstream probe(c.tuning_file);
    if (probe || explicit_file) c.tuned = read_tuning_file(c.tuning_file);
    else c.tuning_file.clear();
  } catch (const InvalidArgument& e) {
    if (explicit_file) throw;
    c.tuning_error = e.what();
    c.tuning_file.clear();
  }
  return c;
}

// A line-oriented encoding; values never contain newlines.
std::string Config::serialize() const {
  std::ostringstream o;
  o.precision(17);
  o << "timeout\n" << timeout << "\ncheck\n" << check << "\ntopology\n" << topology << "\nsegment\n" << segment_bytes
    << "\nwindow\n" << window << "\ntuning_file\n" << tuning_file << "\ntuning_error\n" << tuning_error << "\n";
  for (size_t i = 0; i < algo.size(); ++i) o << "algo\n" << i << "=" << algo[i] << "\n";
  for (const auto& [k, v] : tuned) o << "tuned\n" << k << "=" << v << "\n";
  return o.str();
}

Config Config::deserialize(const std::string& s) {
  Config c;
  std::istringstream in(s);
  std::string key, val;
  while (std::getline(in, key) && std::getline(in, val)) {
    if (key == "timeout") c.timeout = std::stod(val);
    else if (key == "check") c.check = val == "1";
    else if (key == "topology") c.topology = val;
    else if (key == "segment") c.segment_bytes = std::stoull(val);
    else if (key == "window") c.window = std::stoi(val);
    else if (key == "tuning_file") c.tuning_file = val;
    else if (key == "tuning_error") c.tuning_error = val;
    else if (key == "algo") {
      auto eq = val.find('=');
      c.algo[std::stoul(val.substr(0, eq))] = val.substr(eq + 1);
    } else if (key == "tuned") {
      auto eq = val.rfind('=');
      c.tuned.emplace_back(val.substr(0, eq), std::stod(val.substr(eq + 1)));
    }
  }
  return c;
}

CostModel Config::model(int levels) const {
  CostModel m = CostModel::defaults(levels);
  for (const auto& [key, v] : tuned) {
    int L = -1;
    char field[64] = {0};
    if (std::sscanf(key.c_str(), "link.%d.%63s", &L, field) == 2 && L >= 0) {
      while (static_cast<int>(m.link.size()) <= L) m.link.push_back(m.link.back());
      std::string f(field);
      if (f == "alpha_us") m.link[L].alpha = v * 1e-6;
      else if (f == "bw_GBps" && v > 0) m.link[L].beta = 1.0 / (v * 1e9);
    } else if (key == "gamma_GBps" && v > 0) {
      m.gamma = 1.0 / (v * 1e9);
    } else if (key == "copy_GBps" && v > 0) {
      m.copy = 1.0 / (v * 1e9);
    } else if (key == "round_overhead_us") {
      m.round_overhead = v * 1e-6;
    }
  }
  return m;
}

CostModel Config::model(const Topology& t) const {
  CostModel m = model(t.levels());
  std::map<std::string, double> by_host;
  std::map<int, double> by_node;
  const std::string suffix = ".bw_GBps";
  for (const auto& [key, v] : tuned) {
    if (v <= 0 || key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string mid = key.substr(0, key.size() - suffix.size());
    if (mid.rfind("host.", 0) == 0) {
      by_host[mid.substr(5)] = 1.0 / (v * 1e9);
    } else if (mid.rfind("node.", 0) == 0) {
      char* end = nullptr;
      long id = std::strtol(mid.c_str() + 5, &end, 10);
      if (end && *end == '\0' && id >= 0) by_node[static_cast<int>(id)] = 1.0 / (v * 1e9);
    }
  }
  if (by_host.empty() && by_node.empty()) return m;
  m.node_beta.assign(t.size(), 0.0);
  for (int r = 0; r < t.size(); ++r) {
    if (auto it = by_node.find(t.node_of(r)); it != by_node.end()) m.node_beta[r] = it->second;
    else if (auto h = by_host.find(t.host(r)); h != by_host.end()) m.node_beta[r] = h->second;
  }
  return m;
}

}  // namespace baobab
