// A SustainML partner node on eProsima Fast DDS 2.x, written from idl/sustainml.idl alone.
//
//   partner_node model_provider   answers every EncodedTask with a ModelCandidates proposing one model
//                                 that is in no catalogue ("fastdds_mlp", a tabular MLP described as
//                                 data in ModelCandidate.builder), and announces itself on node_status
//   partner_node watch            prints every TaskStatus and TaskResult it reads, one line each
//
// Build (what tests/test_partner_fastdds.py runs; Debian: apt install fastddsgen libfastrtps-dev):
//   fastddsgen -d gen idl/sustainml.idl
//   g++ -std=c++17 -o partner_node partner_node.cpp gen/sustainml.cxx gen/sustainmlPubSubTypes.cxx \
//       -I gen -lfastrtps -lfastcdr
// Run with the loopback profile beside this file, in the pipeline's domain:
//   FASTRTPS_DEFAULT_PROFILES_FILE=loopback_profile.xml SUSTAINML_DOMAIN_ID=0 ./partner_node model_provider
//
// What a partner on another vendor must set is all in qos_for() below and in the profile:
// the QoS of each topic (README, "Partner nodes"), XCDR1, a liveliness lease of at most 3 s on
// node_status, unicast discovery on 127.0.0.1.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>

#include <fastdds/dds/domain/DomainParticipant.hpp>
#include <fastdds/dds/domain/DomainParticipantFactory.hpp>
#include <fastdds/dds/publisher/DataWriter.hpp>
#include <fastdds/dds/publisher/Publisher.hpp>
#include <fastdds/dds/publisher/qos/DataWriterQos.hpp>
#include <fastdds/dds/subscriber/DataReader.hpp>
#include <fastdds/dds/subscriber/SampleInfo.hpp>
#include <fastdds/dds/subscriber/Subscriber.hpp>
#include <fastdds/dds/subscriber/qos/DataReaderQos.hpp>
#include <fastdds/dds/topic/TypeSupport.hpp>

#include "sustainmlPubSubTypes.h"

using namespace eprosima::fastdds::dds;

namespace {

std::atomic<bool> stop_requested{false};
void on_signal(int) { stop_requested = true; }

// The topic name: "sustainml/v<VERSION>/<name>", VERSION from the IDL (sustainml::VERSION).
std::string topic_name(const char* name) {
  return "sustainml/v" + std::to_string(sustainml::VERSION) + "/" + name;
}

// The three QoS profiles of sustainml/qos.py. Every reader and writer of a topic uses its profile.
enum class Profile { Event, State, Status };

template <typename Q>
void apply(Q& qos, Profile profile) {
  qos.reliability().kind = RELIABLE_RELIABILITY_QOS;
  qos.reliability().max_blocking_time = eprosima::fastrtps::Duration_t(10, 0);
  switch (profile) {
    case Profile::Event:   // nothing lost, nothing replayed to late joiners
      qos.durability().kind = VOLATILE_DURABILITY_QOS;
      qos.history().kind = KEEP_ALL_HISTORY_QOS;
      break;
    case Profile::State:   // the latest value per key, for late joiners too
      qos.durability().kind = TRANSIENT_LOCAL_DURABILITY_QOS;
      qos.history().kind = KEEP_LAST_HISTORY_QOS;
      qos.history().depth = 1;
      break;
    case Profile::Status:  // the last 8 per node, and a node's death seen within 3 s
      qos.durability().kind = TRANSIENT_LOCAL_DURABILITY_QOS;
      qos.history().kind = KEEP_LAST_HISTORY_QOS;
      qos.history().depth = 8;
      // Asserted by the heartbeat the node writes every second (MANUAL_BY_TOPIC): a Fast DDS writer
      // of AUTOMATIC liveliness sends the builtin liveliness messages Cyclone cannot read (it logs
      // "deserialization failed" every second); the readers' AUTOMATIC request accepts this kind.
      qos.liveliness().kind = MANUAL_BY_TOPIC_LIVELINESS_QOS;
      qos.liveliness().lease_duration = eprosima::fastrtps::Duration_t(3, 0);
      qos.liveliness().announcement_period = eprosima::fastrtps::Duration_t(1, 0);
      break;
  }
}

struct Bus {
  DomainParticipant* participant = nullptr;
  Publisher* publisher = nullptr;
  Subscriber* subscriber = nullptr;

  explicit Bus(int domain) {
    participant = DomainParticipantFactory::get_instance()->create_participant(domain, PARTICIPANT_QOS_DEFAULT);
    if (participant == nullptr) throw std::runtime_error("cannot create a Fast DDS participant");
    publisher = participant->create_publisher(PUBLISHER_QOS_DEFAULT);
    subscriber = participant->create_subscriber(SUBSCRIBER_QOS_DEFAULT);
  }
  ~Bus() {
    participant->delete_contained_entities();
    DomainParticipantFactory::get_instance()->delete_participant(participant);
  }

  Topic* topic(TopicDataType* type, const char* name) {
    TypeSupport support(type);
    support.register_type(participant);
    return participant->create_topic(topic_name(name), support.get_type_name(), TOPIC_QOS_DEFAULT);
  }
  DataWriter* writer(TopicDataType* type, const char* name, Profile profile) {
    DataWriterQos qos = DATAWRITER_QOS_DEFAULT;
    apply(qos, profile);
    // XCDR1, said explicitly: the types are @final, so every vendor reads it (Fast DDS 2.x readers
    // announce no representation, which every vendor takes for XCDR1).
    qos.representation().m_value.clear();
    qos.representation().m_value.push_back(XCDR_DATA_REPRESENTATION);
    return publisher->create_datawriter(topic(type, name), qos);
  }
  DataReader* reader(TopicDataType* type, const char* name, Profile profile) {
    DataReaderQos qos = DATAREADER_QOS_DEFAULT;
    apply(qos, profile);
    return subscriber->create_datareader(topic(type, name), qos);
  }
};

double now_unix_s() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

sustainml::BuilderSetting integers(const char* name, std::vector<int64_t> values) {
  sustainml::BuilderSetting s;
  s.name(name);
  s.is_list(true);
  s.integers(values);
  return s;
}

sustainml::BuilderSetting number(const char* name, double value) {
  sustainml::BuilderSetting s;
  s.name(name);
  s.is_list(false);
  s.numbers({value});
  return s;
}

// One candidate the default catalogue does not have: the hardware nodes build it from `builder`.
sustainml::ModelCandidates answer(const sustainml::EncodedTask& task) {
  sustainml::ModelCandidates reply;
  reply.task_id(task.task_id());
  if (task.task_type() != "tabular_regression" && task.task_type() != "tabular_classification") {
    reply.excluded().push_back("fastdds_mlp: this partner proposes tabular models only, not " + task.task_type());
    return reply;
  }
  sustainml::ModelCandidate c;
  c.name("fastdds_mlp");
  c.display_name("MLP 64-32 (Fast DDS partner)");
  c.family("MLP");
  c.task_type(task.task_type());
  c.library("torch");
  c.input_shape(task.dataset().input_shape());
  c.quality_metric(task.metric());
  c.higher_is_better(task.higher_is_better());
  c.quality_value(task.higher_is_better() ? 0.80 : 0.60);
  c.quality_benchmark("the partner's own validation set");
  c.quality_source("assumption: a partner's figure, not published");
  c.default_epochs(20);
  c.default_batch_size(256);
  c.licence("MIT");
  c.reason("proposed by the Fast DDS partner node: a small MLP, cheap to train and to serve");
  c.builder().kind("zoo");
  c.builder().name("tabular_mlp");
  c.builder().settings().push_back(integers("d_layers", {64, 32}));
  c.builder().settings().push_back(number("dropout", 0.1));
  reply.candidates().push_back(c);
  return reply;
}

std::string hostname() {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  return name;
}

int model_provider(Bus& bus) {
  DataReader* tasks = bus.reader(new sustainml::EncodedTaskPubSubType(), "encoded_task", Profile::Event);
  DataWriter* replies = bus.writer(new sustainml::ModelCandidatesPubSubType(), "model_candidates", Profile::Event);
  DataWriter* status_writer = bus.writer(new sustainml::NodeStatusPubSubType(), "node_status", Profile::Status);
  if (tasks == nullptr || replies == nullptr || status_writer == nullptr) {
    std::fprintf(stderr, "creating readers or writers failed\n");
    return 1;
  }
  sustainml::NodeStatus status;
  status.node("partner_fastdds");
  status.kind("model_provider");
  status.host(hostname());
  status.pid(static_cast<uint32_t>(getpid()));
  status.state(sustainml::NODE_IDLE);
  status.message("ready");
  status.started_unix_s(now_unix_s());
  std::printf("ready\n");
  std::fflush(stdout);

  auto next_heartbeat = std::chrono::steady_clock::now();
  while (!stop_requested) {
    if (std::chrono::steady_clock::now() >= next_heartbeat) {   // heartbeat every second
      status.heartbeat_unix_s(now_unix_s());
      status_writer->write(&status);
      next_heartbeat += std::chrono::seconds(1);
    }
    if (!tasks->wait_for_unread_message(eprosima::fastrtps::Duration_t(0, 200000000))) continue;
    sustainml::EncodedTask task;
    SampleInfo info;
    while (tasks->take_next_sample(&task, &info) == ReturnCode_t::RETCODE_OK) {
      if (!info.valid_data) continue;
      sustainml::ModelCandidates reply = answer(task);
      replies->write(&reply);
      std::printf("answered %s/%u: %zu candidate(s)\n", task.task_id().problem_id().c_str(),
                  task.task_id().iteration(), reply.candidates().size());
      std::fflush(stdout);
    }
  }
  status.state(sustainml::NODE_STOPPING);
  status.message("shutting down");
  status.heartbeat_unix_s(now_unix_s());
  status_writer->write(&status);
  return 0;
}

const char* state_name(sustainml::TaskState state) {
  switch (state) {
    case sustainml::TASK_QUEUED: return "queued";
    case sustainml::TASK_RUNNING: return "running";
    case sustainml::TASK_DONE: return "done";
    case sustainml::TASK_FAILED: return "failed";
    case sustainml::TASK_CANCELLED: return "cancelled";
  }
  return "?";
}

int watch(Bus& bus) {
  DataReader* statuses = bus.reader(new sustainml::TaskStatusPubSubType(), "task_status", Profile::State);
  DataReader* results = bus.reader(new sustainml::TaskResultPubSubType(), "task_result", Profile::State);
  if (statuses == nullptr || results == nullptr) {
    std::fprintf(stderr, "creating readers failed\n");
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  while (!stop_requested) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sustainml::TaskStatus s;
    SampleInfo info;
    while (statuses->take_next_sample(&s, &info) == ReturnCode_t::RETCODE_OK)
      if (info.valid_data)
        std::printf("status %s/%u %s %s\n", s.task_id().problem_id().c_str(), s.task_id().iteration(),
                    state_name(s.state()), s.stage().c_str());
    sustainml::TaskResult r;
    while (results->take_next_sample(&r, &info) == ReturnCode_t::RETCODE_OK) {
      if (!info.valid_data) continue;
      std::printf("result %s/%u revision %u %s options %zu", r.task_id().problem_id().c_str(),
                  r.task_id().iteration(), r.revision(), state_name(r.state()), r.options().size());
      for (const auto& o : r.options())   // model device rank total_co2_g basis
        std::printf(" | %s %s %u %.6g %s", o.model().c_str(), o.device().c_str(), o.rank(), o.total_co2_g(),
                    o.basis().c_str());
      std::printf("\n");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string role = argc > 1 ? argv[1] : "";
  if (role != "model_provider" && role != "watch") {
    std::fprintf(stderr, "usage: %s model_provider|watch (domain from SUSTAINML_DOMAIN_ID)\n", argv[0]);
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const char* domain = std::getenv("SUSTAINML_DOMAIN_ID");
  try {
    Bus bus(domain ? std::atoi(domain) : 0);
    int rc = role == "watch" ? watch(bus) : model_provider(bus);
    std::printf("stopped\n");
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
