/* A partner "model provider" in C, written from idl/sustainml.idl and the topic table alone.
 *
 * It answers every sustainml::EncodedTask on "sustainml/v3/encoded_task" with a sustainml::ModelCandidates
 * on "sustainml/v3/model_candidates" carrying the same task_id and one candidate, "partner_linear", and
 * announces itself as node "partner_c" on "sustainml/v3/node_status" (a keyed type with an enum).
 *
 * Build:  idlc -o OUT idl/sustainml.idl
 *         cc partner_node.c OUT/sustainml.c -I OUT -lddsc -o partner_node
 * Run:    SUSTAINML_DOMAIN_ID=7 CYCLONEDDS_URI='<CycloneDDS>...' ./partner_node
 *         (CYCLONEDDS_URI must be the XML the Python side uses: same interfaces, peers, discovery tag.)
 *
 * Prints "ready" once its reader and writer exist and "answered PROBLEM ITERATION" per reply;
 * exits 0 on SIGTERM or SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dds/dds.h"
#include "sustainml.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
  (void) sig;
  stop_requested = 1;
}

/* The pipeline's EVENT profile (sustainml/qos.py): reliable with a 10 s max blocking time,
 * volatile, keep-all. Readers and writers of a topic must agree on reliability and durability. */
static dds_qos_t *event_qos(void)
{
  dds_qos_t *qos = dds_create_qos();
  dds_qset_reliability(qos, DDS_RELIABILITY_RELIABLE, DDS_SECS(10));
  dds_qset_durability(qos, DDS_DURABILITY_VOLATILE);
  dds_qset_history(qos, DDS_HISTORY_KEEP_ALL, 0);
  return qos;
}

/* The STATUS profile: reliable, the last 8 per node kept for late joiners, and automatic liveliness
 * with a 3 s lease so that readers learn soon that this process is gone. */
static dds_qos_t *status_qos(void)
{
  dds_qos_t *qos = dds_create_qos();
  dds_qset_reliability(qos, DDS_RELIABILITY_RELIABLE, DDS_SECS(10));
  dds_qset_durability(qos, DDS_DURABILITY_TRANSIENT_LOCAL);
  dds_qset_history(qos, DDS_HISTORY_KEEP_LAST, 8);
  dds_qset_liveliness(qos, DDS_LIVELINESS_AUTOMATIC, DDS_SECS(3));
  return qos;
}

/* A volatile writer drops what it writes before a reader has matched: wait for one (or a stop). */
static int wait_for_reader(dds_entity_t writer, dds_duration_t timeout)
{
  dds_time_t deadline = dds_time() + timeout;
  dds_publication_matched_status_t status;
  while (!stop_requested && dds_time() < deadline) {
    if (dds_get_publication_matched_status(writer, &status) == DDS_RETCODE_OK && status.current_count > 0)
      return 1;
    dds_sleepfor(DDS_MSECS(20));
  }
  return 0;
}

/* The reply to one task: its task id and one small linear model that fits any task. */
static void answer(dds_entity_t writer, const sustainml_EncodedTask *task)
{
  sustainml_ModelCandidate candidate = {
    .name = "partner_linear",
    .family = "linear",
    .task_type = task->task_type,
    .params = 9.0,
    .flops_per_sample = 16.0,
    .input_shape = task->dataset.input_shape,   /* borrowed: written before the loan is returned */
    .quality_metric = task->metric,
    .quality_value = 0.5,
    .higher_is_better = task->higher_is_better,
    .quality_benchmark = "partner benchmark",
    .quality_source = "tests/partner_c",
    .default_epochs = 3,
    .default_batch_size = 32,
    .reason = "proposed by the partner C node",
  };
  sustainml_ModelCandidates reply = {
    .task_id = task->task_id,
    .candidates = { ._maximum = 1, ._length = 1, ._buffer = &candidate, ._release = false },
    .excluded = { ._maximum = 0, ._length = 0, ._buffer = NULL, ._release = false },
  };
  if (!wait_for_reader(writer, DDS_SECS(10))) {
    fprintf(stderr, "no reader on sustainml/model_candidates; task %s dropped\n", task->task_id.problem_id);
    return;
  }
  dds_return_t rc = dds_write(writer, &reply);
  if (rc != DDS_RETCODE_OK)
    fprintf(stderr, "dds_write: %s\n", dds_strretcode(rc));
  else
    printf("answered %s %u\n", task->task_id.problem_id, (unsigned) task->task_id.iteration);
}

/* One status sample: who we are, and that we are idle and ready. */
static void announce(dds_entity_t writer)
{
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  double now_s = (double) dds_time() / 1e9;
  sustainml_NodeStatus status = {
    .node = "partner_c",
    .kind = "model_provider",
    .host = host,
    .pid = (uint32_t) getpid(),
    .state = sustainml_NODE_IDLE,
    .task_id = { .problem_id = "", .iteration = 0 },
    .progress = 0.0,
    .message = "ready",
    .heartbeat_unix_s = now_s,
    .started_unix_s = now_s,
  };
  dds_return_t rc = dds_write(writer, &status);
  if (rc != DDS_RETCODE_OK)
    fprintf(stderr, "dds_write(node_status): %s\n", dds_strretcode(rc));
}

int main(void)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  const char *domain_env = getenv("SUSTAINML_DOMAIN_ID");
  dds_domainid_t domain = domain_env && *domain_env ? (dds_domainid_t) strtoul(domain_env, NULL, 10) : 0;

  /* libddsc reads its XML (interfaces, peers, discovery tag) from CYCLONEDDS_URI itself. */
  dds_entity_t participant = dds_create_participant(domain, NULL, NULL);
  if (participant < 0) {
    fprintf(stderr, "dds_create_participant(%u): %s\n", (unsigned) domain, dds_strretcode(participant));
    return 1;
  }
  dds_qos_t *qos = event_qos();
  dds_entity_t task_topic = dds_create_topic(participant, &sustainml_EncodedTask_desc,
                                             "sustainml/v3/encoded_task", NULL, NULL);
  dds_entity_t reply_topic = dds_create_topic(participant, &sustainml_ModelCandidates_desc,
                                              "sustainml/v3/model_candidates", NULL, NULL);
  dds_entity_t status_topic = dds_create_topic(participant, &sustainml_NodeStatus_desc,
                                               "sustainml/v3/node_status", NULL, NULL);
  dds_entity_t reader = dds_create_reader(participant, task_topic, qos, NULL);
  dds_entity_t writer = dds_create_writer(participant, reply_topic, qos, NULL);
  dds_delete_qos(qos);
  qos = status_qos();
  dds_entity_t status_writer = dds_create_writer(participant, status_topic, qos, NULL);
  dds_delete_qos(qos);
  if (task_topic < 0 || reply_topic < 0 || status_topic < 0
      || reader < 0 || writer < 0 || status_writer < 0) {
    fprintf(stderr, "creating topics, reader or writer failed\n");
    dds_delete(participant);
    return 1;
  }

  /* Wake on data, or every 200 ms to notice a stop request. */
  dds_entity_t waitset = dds_create_waitset(participant);
  dds_entity_t has_data = dds_create_readcondition(reader, DDS_ANY_STATE);
  dds_waitset_attach(waitset, has_data, 0);
  announce(status_writer);
  printf("ready\n");

  while (!stop_requested) {
    if (dds_waitset_wait(waitset, NULL, 0, DDS_MSECS(200)) <= 0)
      continue;
    void *samples[8] = { NULL };   /* NULL: let Cyclone lend its own buffers */
    dds_sample_info_t infos[8];
    int n = dds_take(reader, samples, infos, 8, 8);
    for (int i = 0; i < n; i++)
      if (infos[i].valid_data)
        answer(writer, samples[i]);
    if (n > 0)
      dds_return_loan(reader, samples, n);
  }

  dds_delete(participant);   /* deletes everything created under it */
  printf("stopped\n");
  return 0;
}
