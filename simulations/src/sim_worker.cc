#include "edgefl/simulations/sim_worker.h"

#include <fcntl.h>
#include <omp.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "edgefl/client/device.h"
#include "edgefl/common/clock.h"
#include "edgefl/coordinator/round_settings.h"
#include "edgefl/coordinator/service.h"
#include "edgefl/models/threading.h"
#include "edgefl/simulations/partition.h"
#include "edgefl/transport/zmq_channel.h"
#include "experiment.h"

namespace edgefl::simulations {
namespace {

using transport::Message;

// Each hosted device holds a ZeroMQ socket, whose mailbox is one descriptor, and its TCP
// connection: 2 descriptors a device (a worker of 10,000 devices needs 20,000). The coordinator
// holds one a device. Logs, data files and the context's own descriptors fit in the spare.
constexpr size_t kFilesPerHostedDevice = 2;
constexpr size_t kFilesSpare = 64;

// Raises RLIMIT_NOFILE to `needed` descriptors when it is lower: the soft limit, and the hard
// one too when this process may (CAP_SYS_RESOURCE, up to fs.nr_open). Children started later
// inherit it. kResourceExhausted when the limit stays below `needed`, naming `what` needs them
// and what to do (`alternative`, after "raise it"): ZeroMQ would otherwise fail at the first
// socket past the limit, mid-run.
Status RaiseOpenFileLimit(size_t needed, const std::string& what,
                          const std::string& alternative = "") {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return InternalError(std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  if (limit.rlim_cur >= needed) return OkStatus();
  rlimit raised = limit;
  raised.rlim_cur = needed;
  raised.rlim_max = std::max<rlim_t>(needed, limit.rlim_max);
  if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return OkStatus();
  return ResourceExhaustedError(
      what + " needs " + std::to_string(needed) + " open files, and RLIMIT_NOFILE (" +
      std::to_string(limit.rlim_cur) + ", hard " + std::to_string(limit.rlim_max) +
      ") cannot be raised: " + std::strerror(errno) + "; raise it (ulimit -n " +
      std::to_string(needed) + ")" + alternative);
}

size_t NumThreads(size_t requested) {
  return requested > 0 ? requested : static_cast<size_t>(std::max(1, omp_get_num_procs()));
}

// Training threads for a worker's devices. Each thread owns one Workspace and runs one job at
// a time: every queued message of one device, in order. The I/O thread submits a device only
// when none of its jobs is in the pool, so a Device is never driven by two threads at once.
class TrainingPool {
 public:
  struct Job {
    size_t device = 0;
    std::vector<Message> messages;
  };
  struct Done {
    size_t device = 0;
    std::vector<Message> replies;
  };

  TrainingPool(std::vector<client::Device>& devices,
               std::vector<std::unique_ptr<client::Workspace>> workspaces)
      : devices_(devices), workspaces_(std::move(workspaces)) {
    for (size_t t = 0; t < workspaces_.size(); ++t) threads_.emplace_back([this, t] { Run(t); });
  }
  // Finishes the jobs being run, drops the queued ones.
  ~TrainingPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }
  TrainingPool(const TrainingPool&) = delete;
  TrainingPool& operator=(const TrainingPool&) = delete;

  void Submit(Job job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
      ++outstanding_;
    }
    wake_.notify_one();
  }
  // Moves the finished jobs into `out` (replacing its contents).
  void TakeDone(std::vector<Done>& out) {
    out.clear();
    std::lock_guard<std::mutex> lock(mutex_);
    out.swap(done_);
    outstanding_ -= out.size();
  }
  // Jobs submitted and not yet taken back.
  size_t outstanding() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return outstanding_;
  }

 private:
  void Run(size_t thread) {
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      Done done{job.device, {}};
      for (const Message& message : job.messages) {
        for (Message& reply : devices_[job.device].Handle(message, *workspaces_[thread])) {
          done.replies.push_back(std::move(reply));
        }
      }
      std::lock_guard<std::mutex> lock(mutex_);
      done_.push_back(std::move(done));
    }
  }

  std::vector<client::Device>& devices_;
  std::vector<std::unique_ptr<client::Workspace>> workspaces_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  std::vector<Done> done_;
  size_t outstanding_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Every cohort member of a round gets the same global weights, each in its own RoundStart, and
// each decoded RoundStart would hold its own copy while it waits for a training thread: the
// cohort's share of a worker times the model (0.8 MB for the mlp). Weights equal byte for byte
// to the last ones seen share their buffer instead (RoundStart holds them as a shared pointer
// to const), so the queue holds a round's weights once however large the cohort. Bytes, not
// floats, are compared, so -0 and +0 or two NaN payloads are never mixed up: a device trains
// on exactly the weights it was sent.
class SharedGlobalWeights {
 public:
  void Share(transport::RoundStart& start) {
    if (!start.global_weights) return;
    const std::vector<float>& weights = *start.global_weights;
    if (last_ && last_->size() == weights.size() &&
        std::memcmp(last_->data(), weights.data(), weights.size() * sizeof(float)) == 0) {
      start.global_weights = last_;
    } else {
      last_ = start.global_weights;
    }
  }

 private:
  std::shared_ptr<const std::vector<float>> last_;
};

// The coordinator service's configuration for an experiment run with workers: the engine
// options the in-process simulator derives from the same fields (simulation.cc), on plaintext
// loopback, waiting for every device before the first round and for every cohort member in
// each round.
coordinator::ServiceConfig ServiceConfigFor(const SimulationConfig& config,
                                            const models::ModelSpec& spec) {
  coordinator::ServiceConfig service;
  service.endpoint = "tcp://127.0.0.1:*";
  service.insecure_plaintext = true;
  service.model = spec.name;
  service.input_size = spec.input_size;
  service.num_classes = spec.num_classes;
  service.rounds = config.rounds;
  service.min_clients = config.clients;
  coordinator::CopyRoundSettings(config, service);
  service.min_clients_reported = 1;
  service.round_deadline_seconds = 0.0;
  // The workers are this process's children and are watched directly; an hour of silence is
  // never a live worker.
  service.heartbeat_timeout_seconds = 3600.0;
  // What the workers' devices wait before reconnecting (SimWorkerOptions::silence_timeout).
  service.device_silence_timeout_seconds =
      std::chrono::duration<double>(SimWorkerOptions{}.silence_timeout).count();
  return service;
}

// A started `edgefl sim-worker` child: worker `index` hosts devices [first_device,
// first_device + num_devices).
struct WorkerProcess {
  size_t index = 0;
  size_t first_device = 0;
  size_t num_devices = 0;
  pid_t pid = -1;
  std::string log;
  bool exited = false;
  bool status_known = true;  // false when something else reaped it (SIGCHLD ignored)
  int status = 0;
};

// "sim-worker 1 (pid 4242, devices 21..40)": what an operator needs to find its log and data.
std::string Name(const WorkerProcess& worker) {
  return "sim-worker " + std::to_string(worker.index) + " (pid " + std::to_string(worker.pid) +
         ", devices " + std::to_string(worker.first_device + 1) + ".." +
         std::to_string(worker.first_device + worker.num_devices) + ")";
}

// Starts `argv` with stdout and stderr to `log`. The child gets SIGTERM when this process dies,
// so a crashed simulate leaves no orphan workers. Between fork and exec the child calls only
// async-signal-safe functions (the parent has threads), so the exec failure text is made here.
Result<WorkerProcess> StartWorker(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const std::string exec_failed = "edgefl simulate: cannot execute '" + argv[0] + "'\n";
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return InternalError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execv(args[0], args.data());
    (void)!write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  return WorkerProcess{.pid = pid, .log = log};
}

// Reaps `worker` if it has exited, without blocking. True when it has.
bool Reap(WorkerProcess& worker) {
  if (worker.exited) return true;
  const pid_t reaped = waitpid(worker.pid, &worker.status, WNOHANG);
  if (reaped == worker.pid) worker.exited = true;
  if (reaped < 0 && errno == ECHILD) {
    worker.exited = true;
    worker.status_known = false;
  }
  return worker.exited;
}

std::string DescribeExit(const WorkerProcess& worker) {
  if (!worker.status_known) return "exited (status unknown: reaped elsewhere)";
  if (WIFEXITED(worker.status)) {
    const int code = WEXITSTATUS(worker.status);
    return "exited with code " + std::to_string(code) +
           (code == 127 ? " (could not be executed)" : "");
  }
  if (WIFSIGNALED(worker.status)) {
    const int signal = WTERMSIG(worker.status);
    const char* abbreviation = sigabbrev_np(signal);
    return "was killed by signal " + std::to_string(signal) + " (" +
           (abbreviation != nullptr ? std::string("SIG") + abbreviation : "unknown") +
           (signal == SIGKILL ? ": from an operator or the kernel's out-of-memory killer" : "") +
           (WCOREDUMP(worker.status) ? ", core dumped" : "") + ")";
  }
  return "stopped";
}

// Stops every worker still running and reaps them all, so none is left orphaned or a zombie:
// SIGTERM first (a worker finishes its current training job, says nothing more and exits), then
// SIGKILL for any still running after `grace`.
void StopWorkers(std::vector<WorkerProcess>& workers, std::chrono::milliseconds grace) {
  for (WorkerProcess& worker : workers) {
    if (!Reap(worker)) kill(worker.pid, SIGTERM);
  }
  const auto give_up = std::chrono::steady_clock::now() + grace;
  const auto running = [&] {
    return std::any_of(workers.begin(), workers.end(),
                       [](WorkerProcess& worker) { return !Reap(worker); });
  };
  while (running() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (WorkerProcess& worker : workers) {
    if (Reap(worker)) continue;
    spdlog::warn("{} did not stop within {} ms of SIGTERM; killing it", Name(worker),
                 grace.count());
    kill(worker.pid, SIGKILL);
    pid_t reaped = -1;
    do {
      reaped = waitpid(worker.pid, &worker.status, 0);
    } while (reaped < 0 && errno == EINTR);
    worker.exited = true;
    worker.status_known = reaped == worker.pid;
  }
}

// "LOG ends:" and the last lines of a worker's log (its stdout and stderr), for an error message.
std::string Tail(const std::string& path, size_t max_lines = 5) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > max_lines) lines.pop_front();
  }
  if (lines.empty()) return path + " is empty";
  std::string text = path + " ends:";
  for (const std::string& line : lines) text += "\n  " + line;
  return text;
}

}  // namespace

Status SimWorkerOptions::Validate() const {
  if (endpoint.empty()) return InvalidArgumentError("sim-worker: endpoint is empty");
  if (!insecure_plaintext && (secret_key_file.empty() || server_public_key_file.empty())) {
    return InvalidArgumentError(
        "sim-worker: secret_key_file and server_public_key_file are required unless "
        "insecure_plaintext");
  }
  if (heartbeat_interval <= std::chrono::milliseconds::zero()) {
    return InvalidArgumentError("sim-worker: heartbeat_interval must be > 0");
  }
  if (silence_timeout <= std::chrono::milliseconds::zero()) {
    return InvalidArgumentError("sim-worker: silence_timeout must be > 0");
  }
  return OkStatus();
}

Result<SimWorkerStats> RunSimWorker(const SimulationConfig& config, const SimWorkerOptions& options,
                                    const std::atomic<bool>& stop) {
  EDGEFL_RETURN_IF_ERROR(options.Validate());
  EDGEFL_RETURN_IF_ERROR(config.Validate());
  const size_t first = options.first_device;
  if (first >= config.clients) {
    return InvalidArgumentError("sim-worker: first_device " + std::to_string(first) +
                                " is outside the experiment's " + std::to_string(config.clients) +
                                " devices");
  }
  const size_t count = options.num_devices > 0 ? options.num_devices : config.clients - first;
  if (count > config.clients - first) {
    return InvalidArgumentError("sim-worker: devices " + std::to_string(first) + ".." +
                                std::to_string(first + count - 1) + " exceed the experiment's " +
                                std::to_string(config.clients) + " devices");
  }
  EDGEFL_RETURN_IF_ERROR(RaiseOpenFileLimit(
      kFilesPerHostedDevice * count + kFilesSpare,
      "sim-worker: hosting " + std::to_string(count) + " devices",
      " or host fewer devices per worker (simulate --workers K, sim-worker --devices N)"));
  // The pool's threads are the parallelism; kernels inside a device's training run on one
  // thread, as they do inside the in-process host's parallel loop.
  models::SetNumThreads(1);

  // The in-process simulator's data, partition and model (experiment.h).
  // Evaluation is the coordinator's; devices train on `train` alone (the test set would be
  // 31 MB of floats for Fashion-MNIST).
  EDGEFL_ASSIGN_OR_RETURN(Datasets data, LoadData(config, /*load_test=*/false));
  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::vector<uint32_t>> partition,
                          PartitionDevices(config, data));
  const models::ModelSpec spec = ModelSpecFor(config, data.train);
  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<client::Workspace>> workspaces,
                          MakeWorkspaces(spec, NumThreads(options.threads)));
  std::vector<client::Device> devices;
  devices.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const size_t index = first + i;
    devices.emplace_back(ClientId{index + 1},
                         client::LocalData{&data.train, partition[index % partition.size()]});
  }

  EDGEFL_ASSIGN_OR_RETURN(std::shared_ptr<transport::ZmqContext> context,
                          transport::ZmqContext::Create(1, static_cast<int>(count) + 64));
  WallClock clock;
  transport::ZmqDeviceOptions channel_options{
      .endpoint = options.endpoint,
      .insecure_plaintext = options.insecure_plaintext,
      .secret_key_file = options.secret_key_file,
      .server_public_key_file = options.server_public_key_file,
      .heartbeat_interval = std::chrono::milliseconds(0),  // driven below, for all at once
      .context = context};
  std::vector<std::unique_ptr<transport::ZmqDeviceChannel>> channels;
  channels.reserve(count);
  transport::ZmqDevicePoller poller;
  // Devices connect a window at a time: thousands of simultaneous connects overflow the
  // coordinator's accept queue, and the kernel then retries them after seconds of back-off.
  constexpr size_t kConnectWindow = 256;
  size_t num_connecting = 0;  // Hello sent, no Welcome yet
  const auto connect_more = [&]() -> Status {
    const spdlog::level::level_enum log_level = spdlog::get_level();
    while (channels.size() < count && num_connecting < kConnectWindow) {
      const size_t i = channels.size();
      // Every channel would repeat the first one's plaintext warning.
      if (i >= 1) spdlog::set_level(std::max(log_level, spdlog::level::err));
      Result<std::unique_ptr<transport::ZmqDeviceChannel>> channel =
          transport::ZmqDeviceChannel::Create(channel_options, clock);
      if (!channel.ok()) {
        spdlog::set_level(log_level);
        return channel.status();
      }
      Message hello = devices[i].MakeHello("sim-" + std::to_string(first + i + 1));
      std::get<transport::Hello>(hello.body).requested_id = first + i + 1;
      EDGEFL_RETURN_IF_ERROR((*channel)->Send(std::move(hello)));
      poller.Add(**channel);
      channels.push_back(std::move(channel).value());
      ++num_connecting;
    }
    spdlog::set_level(log_level);
    return OkStatus();
  };
  EDGEFL_RETURN_IF_ERROR(connect_more());
  spdlog::info("event=sim_worker_connecting devices={}..{} endpoint={} threads={}", first + 1,
               first + count, options.endpoint, workspaces.size());

  SimWorkerStats stats{.num_devices = count};
  TrainingPool pool(devices, std::move(workspaces));
  std::vector<uint8_t> welcomed(count, 0), finished(count, 0), in_pool(count, 0),
      waiting_flag(count, 0);
  std::vector<std::vector<Message>> pending(count);
  std::vector<size_t> waiting;  // devices with pending messages and no job in the pool
  size_t num_finished = 0, num_welcomed = 0;
  Clock::Duration last_heard = clock.Now();
  Clock::Duration next_heartbeat = clock.Now() + options.heartbeat_interval;
  std::vector<size_t> ready;
  std::vector<TrainingPool::Done> done;
  SharedGlobalWeights shared_weights;
  const auto queue = [&](size_t i) {
    if (!in_pool[i] && !waiting_flag[i] && !pending[i].empty()) {
      waiting_flag[i] = 1;
      waiting.push_back(i);
    }
  };

  while (num_finished < count && !stop.load()) {
    // Short waits while training runs, so replies leave soon after they are made.
    // One poll looks at every socket, so it is not free with thousands of them.
    const auto timeout =
        pool.outstanding() > 0 ? std::chrono::milliseconds(10) : std::chrono::milliseconds(50);
    EDGEFL_RETURN_IF_ERROR(poller.Wait(timeout, ready));
    for (size_t i : ready) {
      while (true) {
        Result<Message> message = channels[i]->Receive(clock.Now());
        if (!message.ok()) {
          if (message.status().code() != StatusCode::kDeadlineExceeded) return message.status();
          break;
        }
        last_heard = clock.Now();
        if (const auto* welcome = std::get_if<transport::Welcome>(&message->body)) {
          if (welcome->assigned_id.value() != first + i + 1) {
            return AlreadyExistsError(
                "sim-worker: device " + std::to_string(first + i + 1) + " was given id " +
                std::to_string(welcome->assigned_id.value()) +
                " (another connection holds its id: is another worker hosting it?)");
          }
          if (welcomed[i]) continue;
          welcomed[i] = 1;
          ++num_welcomed;
          --num_connecting;
          if (num_welcomed == count) {
            spdlog::info("event=sim_worker_welcomed devices={} seconds={:.1f}", count,
                         ToSeconds(clock.Now()));
          }
        } else if (std::holds_alternative<transport::Goodbye>(message->body)) {
          if (!finished[i]) ++num_finished;
          finished[i] = 1;
          pending[i].clear();
        } else if (std::holds_alternative<transport::RoundStart>(message->body) ||
                   std::holds_alternative<transport::SecAggPayload>(message->body)) {
          if (auto* start = std::get_if<transport::RoundStart>(&message->body)) {
            shared_weights.Share(*start);
          }
          pending[i].push_back(std::move(message).value());
          queue(i);
        }
        // RoundEnd (the service's keep-alive) and errors need no answer.
      }
    }
    for (size_t i : waiting) {
      waiting_flag[i] = 0;
      if (finished[i] || pending[i].empty()) continue;
      in_pool[i] = 1;
      stats.num_messages_handled += pending[i].size();
      pool.Submit(TrainingPool::Job{i, std::move(pending[i])});
      pending[i].clear();
    }
    waiting.clear();
    EDGEFL_RETURN_IF_ERROR(connect_more());
    pool.TakeDone(done);
    for (TrainingPool::Done& result : done) {
      in_pool[result.device] = 0;
      for (Message& reply : result.replies) {
        Status sent = channels[result.device]->Send(std::move(reply));
        if (sent.ok()) {
          ++stats.num_replies_sent;
        } else {
          spdlog::warn("sim-worker: device {}: reply not sent: {}", first + result.device + 1,
                       sent.ToString());
        }
      }
      queue(result.device);
    }
    const Clock::Duration now = clock.Now();
    if (now >= next_heartbeat) {
      for (size_t i = 0; i < channels.size(); ++i) {
        if (finished[i]) continue;
        if (channels[i]->SendHeartbeat().ok()) ++stats.num_heartbeats_sent;
      }
      next_heartbeat = now + options.heartbeat_interval;
    }
    if (now - last_heard > options.silence_timeout) {
      return DeadlineExceededError(
          "sim-worker: the coordinator at " + options.endpoint + " sent nothing for " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(now - last_heard).count()) +
          " s (" + std::to_string(num_welcomed) + " of " + std::to_string(count) +
          " devices welcomed)");
    }
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  spdlog::info(
      "event=sim_worker_done devices={} handled={} replies={} heartbeats={} peak_rss_mib={:.0f}",
      count, stats.num_messages_handled, stats.num_replies_sent, stats.num_heartbeats_sent,
      static_cast<double>(usage.ru_maxrss) / 1024.0);
  return stats;
}

Result<SimulationResult> RunWorkerSimulation(
    const SimulationConfig& config, const std::function<void(const RoundRecord&)>& on_round,
    const std::string& program) {
  EDGEFL_RETURN_IF_ERROR(config.Validate());
  if (config.workers == 0) {
    return InvalidArgumentError("RunWorkerSimulation needs workers >= 1");
  }
  const auto wall_start = std::chrono::steady_clock::now();
  const size_t num_threads = NumThreads(config.threads);
  models::SetNumThreads(static_cast<int>(num_threads));
  // The service here holds one connection a device; the workers raise their own limit.
  EDGEFL_RETURN_IF_ERROR(RaiseOpenFileLimit(config.clients + kFilesSpare,
                                            "simulate --workers: the coordinator service of " +
                                                std::to_string(config.clients) + " devices"));

  // The coordinator's side needs the test set (evaluation) and the partition (label skew).
  EDGEFL_ASSIGN_OR_RETURN(Datasets data, LoadData(config));
  const models::ModelSpec spec = ModelSpecFor(config, data.train);
  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::vector<uint32_t>> partition,
                          PartitionDevices(config, data));
  if (!data.groups.empty() || !spec.base.empty() || spec.lora_rank > 0) {
    // The service builds its model from (model, input_size, num_classes) alone.
    return InvalidArgumentError(
        "workers: text data, base checkpoints and LoRA adapters run in process only (the "
        "coordinator service builds models from name and shape); set workers = 0");
  }
  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<client::Workspace>> eval_workspaces,
                          MakeWorkspaces(spec, num_threads));
  SimulationResult result;
  result.label_skew = LabelSkew(data.train.labels, data.train.num_classes, partition);
  result.num_parameters = eval_workspaces[0]->model().num_parameters();

  const std::filesystem::path dir = std::filesystem::path(config.out) / "workers";
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return UnavailableError("cannot create '" + dir.string() + "': " + error.message());
  }
  const std::string worker_config = (dir / "config.toml").string();
  {
    std::ofstream file(worker_config, std::ios::trunc);
    file << FormatConfig(config);
    if (!file) return UnavailableError("cannot write '" + worker_config + "'");
  }

  // The coordinator service on a thread of this process; the hooks evaluate each round as
  // RunSimulation does. sim_seconds is the service's (wall) clock at the round's end. Every
  // path out of this call joins the thread: setting `stop` ends the service even mid-round.
  struct ServiceState {
    std::promise<std::string> listening;
    bool endpoint_set = false;  // touched by the service thread only
    std::atomic<bool> stop{false};
    std::atomic<bool> done{false};
    std::atomic<size_t> rounds_done{0};
    Status status;
  };
  ServiceState state;
  std::future<std::string> endpoint_future = state.listening.get_future();
  coordinator::ServiceHooks hooks;
  hooks.on_listening = [&state](const std::string& endpoint) {
    state.endpoint_set = true;
    state.listening.set_value(endpoint);
  };
  hooks.on_round = [&](const coordinator::RoundReport& report, std::span<const float> weights) {
    RoundRecord record =
        MakeRoundRecord(config, report.round.value(), report, ToSeconds(report.finished_at),
                        weights, data, eval_workspaces);
    record.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    result.rounds.push_back(record);
    result.final_weights.assign(weights.begin(), weights.end());
    if (on_round) on_round(record);
    state.rounds_done.store(result.rounds.size());
  };
  // The service logs every device that joins; the simulation prints its own progress.
  const spdlog::level::level_enum log_level = spdlog::get_level();
  spdlog::set_level(std::max(log_level, spdlog::level::err));
  std::thread service([&state, hooks, service_config = ServiceConfigFor(config, spec)] {
    state.status = coordinator::RunService(service_config, state.stop, hooks);
    if (!state.endpoint_set) state.listening.set_value("");
    state.done.store(true);
  });
  const std::string endpoint = endpoint_future.get();
  if (endpoint.empty()) {
    service.join();
    spdlog::set_level(log_level);
    return state.status.ok() ? InternalError("the coordinator service did not start")
                             : state.status;
  }

  // Devices split evenly; worker k hosts [k * clients / K, (k + 1) * clients / K).
  std::vector<WorkerProcess> workers;
  const size_t threads_per_worker = std::max<size_t>(1, num_threads / config.workers);
  Status failure;
  for (size_t k = 0; k < config.workers && failure.ok(); ++k) {
    const size_t begin = k * config.clients / config.workers;
    const size_t end = (k + 1) * config.clients / config.workers;
    const std::vector<std::string> argv = {program,
                                           "sim-worker",
                                           "--connect",
                                           endpoint,
                                           "--config",
                                           worker_config,
                                           "--first-device",
                                           std::to_string(begin),
                                           "--devices",
                                           std::to_string(end - begin),
                                           "--threads",
                                           std::to_string(threads_per_worker),
                                           "--insecure-plaintext"};
    Result<WorkerProcess> worker =
        StartWorker(argv, (dir / ("worker-" + std::to_string(k) + ".log")).string());
    if (worker.ok()) {
      worker->index = k;
      worker->first_device = begin;
      worker->num_devices = end - begin;
      workers.push_back(std::move(worker).value());
    } else {
      failure = worker.status().WithContext("sim-worker " + std::to_string(k));
    }
  }
  // Watch the workers while the service runs, from start-up (a worker that cannot be executed
  // or exits before connecting) to the last round: none may exit before it, nor fail. (After it
  // they exit on the service's Goodbye, possibly before the service returns.) Polling with
  // WNOHANG for our own pids leaves SIGCHLD and other children to the rest of the program.
  const auto failed = [&](const WorkerProcess& worker) {
    return state.rounds_done.load() < config.rounds || !worker.status_known ||
           !WIFEXITED(worker.status) || WEXITSTATUS(worker.status) != 0;
  };
  std::optional<size_t> dead;  // index in `workers` of the first one that failed
  while (failure.ok() && !dead && !state.done.load()) {
    for (size_t k = 0; k < workers.size() && !dead; ++k) {
      if (Reap(workers[k]) && !state.done.load() && failed(workers[k])) dead = k;
    }
    if (!dead) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // A worker that stops on SIGTERM within this long is stopping normally; see StopWorkers.
  constexpr std::chrono::milliseconds kWorkerStopGrace{2000};
  if (!failure.ok() || dead) {
    // The rounds have no deadline (for results equal to the in-process simulator's), so with a
    // worker's devices gone the round in hand would wait for them forever. `stop` cancels it
    // (RoundEngine::RunRound's cancel flag, read every 100 ms), and the service returns,
    // applying nothing of it and passing it to no hook; a round whose last updates were already
    // queued finishes first. So the thread is joined, never left behind.
    state.stop.store(true);
    StopWorkers(workers, kWorkerStopGrace);
    service.join();
    spdlog::set_level(log_level);
    if (!dead) return failure;
    const WorkerProcess& worker = workers[*dead];
    std::string others;
    for (const WorkerProcess& other : workers) {
      if (other.index == worker.index) continue;
      others += (others.empty() ? "" : "; ") + Name(other) + " " + DescribeExit(other);
    }
    return InternalError(Name(worker) + " " + DescribeExit(worker) + " after " +
                         std::to_string(state.rounds_done.load()) + " of " +
                         std::to_string(config.rounds) + " rounds; the simulation stopped" +
                         (others.empty() ? "" : " (stopped " + others + ")") + ". " +
                         Tail(worker.log));
  }
  service.join();
  spdlog::set_level(log_level);
  if (!state.status.ok()) {
    // Without the service's Goodbyes the workers would wait out their silence timeout.
    StopWorkers(workers, kWorkerStopGrace);
    return state.status;
  }
  // After the Goodbyes every worker exits; give them a moment to flush.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (WorkerProcess& worker : workers) {
    while (!Reap(worker) && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!worker.exited) {
      spdlog::warn("{} did not exit after the last round; stopping it", Name(worker));
    } else if (failed(worker)) {
      spdlog::warn("{} {} after the last round; see {}", Name(worker), DescribeExit(worker),
                   worker.log);
    }
  }
  StopWorkers(workers, kWorkerStopGrace);
  if (result.rounds.size() != config.rounds) {
    return InternalError("the coordinator service ran " + std::to_string(result.rounds.size()) +
                         " of " + std::to_string(config.rounds) + " rounds");
  }
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

}  // namespace edgefl::simulations
