#include "baobab/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "baobab/algorithms.hpp"
#include "baobab/error.hpp"
#include "baobab/simd.hpp"
#include "baobab/topology.hpp"

namespace baobab {

bool CostModel::uneven_links(const std::vector<int>& ranks) const {
  if (node_beta.empty() || ranks.size() < 2) return false;
  double lo = node_link_beta(ranks[0]), hi = lo;
  for (int r : ranks) {
    lo = std::min(lo, node_link_beta(r));
    hi = std::max(hi, node_link_beta(r));
  }
  return hi > 1.1 * lo;
}

const char* device_route_name(DeviceRoute r) {
  switch (r) {
    case DeviceRoute::direct: return "direct";
    case DeviceRoute::staged: return "staged";
    case DeviceRoute::ipc: return "ipc";
  }
  return "?";
}

double CostModel::device_route_cost(DeviceRoute r, size_t bytes, int L) const {
  const double b = static_cast<double>(bytes);
  const LinkParams& lp = at(L);
  switch (r) {
    case DeviceRoute::direct:  // MPI reads and writes device memory
      return lp.alpha + dev.aware_alpha + b * std::max(lp.beta, dev.aware_beta);
    case DeviceRoute::staged:  // a copy to pinned memory, the message, a copy back; the host waits for both copies
      return 2 * dev.latency + b * (dev.d2h + dev.h2d) + lp.alpha + b * lp.beta;
    case DeviceRoute::ipc:  // into the exported buffer, a descriptor, out of it, an acknowledgement
      return 2 * dev.latency + b * (dev.copy + std::max(dev.copy, dev.peer)) + 2 * lp.alpha + 128.0 * lp.beta;
  }
  return 0;
}

DeviceRoute CostModel::device_route(size_t bytes, int L, bool near) const {
  // IPC against staging alone, whatever the path: both ends of a message
  // must agree on IPC (the other routes are alike on the wire), and only the
  // model and the IPC switch, not the path, are sure to be the same on both.
  if (dev.ipc && near &&
      device_route_cost(DeviceRoute::ipc, bytes, L) <= device_route_cost(DeviceRoute::staged, bytes, L))
    return DeviceRoute::ipc;
  if (dev.path == DevicePath::aware) return DeviceRoute::direct;
  if (dev.path == DevicePath::staged) return DeviceRoute::staged;
  return device_route_cost(DeviceRoute::direct, bytes, L) <= device_route_cost(DeviceRoute::staged, bytes, L)
             ? DeviceRoute::direct
             : DeviceRoute::staged;
}

CostModel CostModel::for_device(DevicePath path, bool ipc) const {
  CostModel m = *this;
  m.dev.on = true;
  m.dev.path = path;
  m.dev.ipc = ipc;
  return m;
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
  errno = 0;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || std::isnan(d)) throw InvalidArgument(name + "='" + v + "' is not a number");
  if (errno == ERANGE && std::isinf(d)) throw InvalidArgument(name + "='" + v + "' is out of range");
  return d;
}

// A whole number in [lo, hi].
long long parse_int(const std::string& name, const std::string& v, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0')
    throw InvalidArgument(name + "='" + v + "' is not a whole number");
  if (errno == ERANGE || n < lo || n > hi)
    throw InvalidArgument(name + "='" + v + "' is out of range (" + std::to_string(lo) + " to " + std::to_string(hi) +
                          ")");
  return n;
}

size_t parse_bytes(const std::string& name, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(v.c_str(), &end);
  std::string unit(end);
  double mult = 1;
  if (unit == "" || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else throw InvalidArgument(name + "='" + v + "': unknown unit '" + unit + "' (use K, M or G)");
  if (v.empty() || end == v.c_str() || !(d > 0)) throw InvalidArgument(name + "='" + v + "' must be a positive size");
  const double bytes = d * mult;
  if (errno == ERANGE || !(bytes >= 1) || bytes > 0x1p50)
    throw InvalidArgument(name + "='" + v + "' must be a size from 1 byte to 1P");
  return static_cast<size_t>(bytes);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One of `choices`, exactly.
void need_choice(const char* name, std::initializer_list<const char*> choices) {
  const std::string v = env(name);
  if (v.empty()) return;
  std::string list;
  for (const char* c : choices) {
    if (v == c) return;
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  throw InvalidArgument(std::string(name) + "='" + v + "': expected one of " + list);
}

}  // namespace

double check_timeout(const std::string& name, double t, bool zero_ok) {
  if (std::isnan(t)) throw InvalidArgument(name + " is NaN: give seconds, or inf for no deadline");
  if (std::isinf(t) && t > 0) return t;
  std::ostringstream m;
  if (t < 0 || (t == 0 && !zero_ok)) {
    m << name << "=" << t << " must be " << (zero_ok ? "0 or more" : "positive") << " seconds (inf: no deadline)";
    throw InvalidArgument(m.str());
  }
  if (t > kMaxTimeout) {
    m << name << "=" << t << " is beyond the longest deadline (" << kMaxTimeout
      << " s, about 31 years); use inf for no deadline";
    throw InvalidArgument(m.str());
  }
  return t;
}

double parse_timeout(const std::string& name, const std::string& text) {
  std::string v = lower(text);
  v.erase(0, v.find_first_not_of(" \t"));
  v.erase(v.find_last_not_of(" \t") + 1);
  if (v == "none" || v == "inf" || v == "+inf" || v == "infinity" || v == "+infinity")
    return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0')
    throw InvalidArgument(name + "='" + text + "' is not a number of seconds (or inf / none / 0 for no deadline)");
  if (errno == ERANGE && std::isinf(d))
    throw InvalidArgument(name + "='" + text + "' overflows; use inf for no deadline");
  if (d == 0) return std::numeric_limits<double>::infinity();
  return check_timeout(name + "='" + text + "'", d);
}

bool parse_flag(const std::string& name, const std::string& text) {
  const std::string v = lower(text);
  if (v == "1" || v == "on" || v == "yes" || v == "true") return true;
  if (v == "0" || v == "off" || v == "no" || v == "false") return false;
  throw InvalidArgument(name + "='" + text + "': expected 1/0, on/off, yes/no or true/false");
}

void check_environment() {
  if (auto v = env("BAOBAB_TIMEOUT"); !v.empty()) parse_timeout("BAOBAB_TIMEOUT", v);
  if (auto v = env("BAOBAB_CHECK"); !v.empty()) parse_flag("BAOBAB_CHECK", v);
  if (auto v = env("BAOBAB_CUDA_AWARE"); !v.empty()) parse_flag("BAOBAB_CUDA_AWARE", v);
  if (auto v = env("BAOBAB_SPIN"); !v.empty()) parse_int("BAOBAB_SPIN", v, 0, 1000000000);
  if (auto v = env("BAOBAB_WINDOW"); !v.empty()) parse_int("BAOBAB_WINDOW", v, 1, 32);
  if (auto v = env("BAOBAB_SEGMENT"); !v.empty()) parse_bytes("BAOBAB_SEGMENT", v);
  simd::check_caps();  // every BAOBAB_*_ISA: the core's kernels' and the applications'
  need_choice("BAOBAB_PACK", {"auto", "always", "never"});
  need_choice("BAOBAB_DEVICE_TRANSPORT", {"off", "0", "staged", "cuda-aware", "auto"});
  need_choice("BAOBAB_DEVICE_EMULATION", {"off", "0", "staged", "cuda-aware", "auto"});
  need_choice("BAOBAB_DEVICE_PLAN", {"device", "host"});
  if (auto v = env("BAOBAB_TUNING"); !v.empty()) {
    struct stat st {};
    if (::stat(v.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw InvalidArgument("BAOBAB_TUNING='" + v + "' is not a regular file (a directory?)");
  }
}


std::string default_tuning_path() {
  std::string xdg = env("XDG_CONFIG_HOME");
  std::string home = env("HOME");
  if (!xdg.empty()) return xdg + "/baobab/tuning.conf";
  if (!home.empty()) return home + "/.config/baobab/tuning.conf";
  return "baobab-tuning.conf";
}

std::vector<std::pair<std::string, double>> read_tuning_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw InvalidArgument("tuning file '" + path + "' is not a regular file");
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
    Coll c;
    try {
      c = coll_from_name(item.substr(0, eq));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument("BAOBAB_ALGO='" + spec + "': " + e.what());
    }
    std::string name = item.substr(eq + 1);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (name != "auto" && !find_algorithm(c, name)) {
      std::string known;
      for (const auto& n : algorithm_names(c)) known += (known.empty() ? "" : ", ") + n;
      throw InvalidArgument("BAOBAB_ALGO='" + spec + "': unknown " + coll_name(c) + " algorithm '" + name +
                            "' (known: " + known + ", auto)");
    }
    algo[static_cast<size_t>(c)] = name;
  }
}

Config Config::from_env(bool load_tuning) {
  check_environment();
  Config c;
  if (auto v = env("BAOBAB_TIMEOUT"); !v.empty()) c.timeout = parse_timeout("BAOBAB_TIMEOUT", v);
  if (auto v = env("BAOBAB_CHECK"); !v.empty()) c.check = parse_flag("BAOBAB_CHECK", v);
  c.topology = env("BAOBAB_TOPOLOGY");
  if (auto v = env("BAOBAB_ALGO"); !v.empty()) c.set_algos(v);
  if (auto v = env("BAOBAB_SEGMENT"); !v.empty()) c.segment_bytes = parse_bytes("BAOBAB_SEGMENT", v);
  if (auto v = env("BAOBAB_WINDOW"); !v.empty()) c.window = static_cast<int>(parse_int("BAOBAB_WINDOW", v, 1, 32));
  c.device_host_plan = env("BAOBAB_DEVICE_PLAN") == "host";
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
    if (explicit_file) throw InvalidArgument(std::string("BAOBAB_TUNING: ") + e.what());
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
    << "\nwindow\n" << window << "\ndevice_plan\n" << (device_host_plan ? "host" : "device") << "\ntuning_file\n" << tuning_file << "\ntuning_error\n" << tuning_error << "\n";
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
    else if (key == "device_plan") c.device_host_plan = val == "host";
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
    } else if (key == "rendezvous_bytes" && v >= 0) {
      m.rndv_bytes = v;
    } else if (key == "device.d2h_GBps" && v > 0) {
      m.dev.d2h = 1.0 / (v * 1e9);
    } else if (key == "device.h2d_GBps" && v > 0) {
      m.dev.h2d = 1.0 / (v * 1e9);
    } else if (key == "device.copy_GBps" && v > 0) {
      m.dev.copy = 1.0 / (v * 1e9);
    } else if (key == "device.peer_GBps" && v > 0) {
      m.dev.peer = 1.0 / (v * 1e9);
    } else if (key == "device.reduce_GBps" && v > 0) {
      m.dev.gamma = 1.0 / (v * 1e9);
    } else if (key == "device.latency_us" && v >= 0) {
      m.dev.latency = v * 1e-6;
    } else if (key == "device.aware_us" && v >= 0) {
      m.dev.aware_alpha = v * 1e-6;
    } else if (key == "device.aware_GBps" && v > 0) {
      m.dev.aware_beta = 1.0 / (v * 1e9);
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
