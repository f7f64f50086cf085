#include "tools/lv2host/plugin_worker.h"

#include <cassert>
#include <chrono>
#include <cstring>

namespace stemsphere::host {

namespace {

uint32_t round_up_to_power_of_two(uint32_t n) {
    uint32_t p = 64;
    while (p < n) p <<= 1;
    return p;
}

}  // namespace

MessageRing::MessageRing(uint32_t capacity_bytes)
    : bytes_(round_up_to_power_of_two(capacity_bytes)),
      mask_(static_cast<uint32_t>(bytes_.size()) - 1) {}

uint32_t MessageRing::free_space() const {
    const uint32_t used =
        write_pos_.load(std::memory_order_relaxed) - read_pos_.load(std::memory_order_acquire);
    return static_cast<uint32_t>(bytes_.size()) - used;
}

void MessageRing::copy_in(uint32_t at, const void* data, uint32_t size) {
    const auto* src = static_cast<const uint8_t*>(data);
    for (uint32_t i = 0; i < size; ++i) bytes_[(at + i) & mask_] = src[i];
}

void MessageRing::copy_out(uint32_t at, void* out, uint32_t size) const {
    auto* dst = static_cast<uint8_t*>(out);
    for (uint32_t i = 0; i < size; ++i) dst[i] = bytes_[(at + i) & mask_];
}

bool MessageRing::write(const void* data, uint32_t size) {
    if (size == 0 || free_space() < size + sizeof(uint32_t)) return false;
    const uint32_t at = write_pos_.load(std::memory_order_relaxed);
    copy_in(at, &size, sizeof(size));
    copy_in(at + sizeof(uint32_t), data, size);
    write_pos_.store(at + static_cast<uint32_t>(sizeof(uint32_t)) + size,
                     std::memory_order_release);
    return true;
}

uint32_t MessageRing::peek_size() const {
    const uint32_t at = read_pos_.load(std::memory_order_relaxed);
    if (write_pos_.load(std::memory_order_acquire) == at) return 0;
    uint32_t size = 0;
    copy_out(at, &size, sizeof(size));
    return size;
}

bool MessageRing::read(void* out, uint32_t out_capacity) {
    const uint32_t size = peek_size();
    if (size == 0) return false;
    assert(size <= out_capacity);
    if (size > out_capacity) return false;
    const uint32_t at = read_pos_.load(std::memory_order_relaxed);
    copy_out(at + sizeof(uint32_t), out, size);
    read_pos_.store(at + static_cast<uint32_t>(sizeof(uint32_t)) + size, std::memory_order_release);
    return true;
}

PluginWorker::PluginWorker(bool threaded, uint32_t ring_bytes)
    : threaded_(threaded),
      requests_(ring_bytes),
      responses_(ring_bytes),
      request_scratch_(round_up_to_power_of_two(ring_bytes)),
      response_scratch_(round_up_to_power_of_two(ring_bytes)) {
    schedule_.handle = this;
    schedule_.schedule_work = schedule_callback;
    if (threaded_) thread_ = std::thread([this] { thread_main(); });
}

PluginWorker::~PluginWorker() {
    stop();
}

void PluginWorker::attach(LV2_Handle instance, const LV2_Worker_Interface* iface) {
    instance_ = instance;
    iface_ = iface;
}

void PluginWorker::stop() {
    if (!thread_.joinable()) return;
    stopping_.store(true);
    wake_.release();
    thread_.join();
}

LV2_Worker_Status PluginWorker::schedule_callback(LV2_Worker_Schedule_Handle handle, uint32_t size,
                                                  const void* data) {
    return static_cast<PluginWorker*>(handle)->schedule(size, data);
}

LV2_Worker_Status PluginWorker::respond_callback(LV2_Worker_Respond_Handle handle, uint32_t size,
                                                 const void* data) {
    return static_cast<PluginWorker*>(handle)->respond(size, data);
}

LV2_Worker_Status PluginWorker::schedule(uint32_t size, const void* data) {
    if (iface_ == nullptr || iface_->work == nullptr) return LV2_WORKER_ERR_UNKNOWN;
    if (!threaded_) {
        // work() is allowed to allocate and block; it is not part of the real-time path even
        // though a synchronous host runs it from inside run().
        const bool observed = RunObservation::active_on_this_thread();
        if (observed) RunObservation::suspend();
        const LV2_Worker_Status status =
            iface_->work(instance_, respond_callback, this, size, data);
        jobs_done_.fetch_add(1);
        if (observed) RunObservation::resume();
        return status;
    }
    pending_jobs_.fetch_add(1);
    if (!requests_.write(data, size)) {
        pending_jobs_.fetch_sub(1);
        return LV2_WORKER_ERR_NO_SPACE;
    }
    wake_.release();
    return LV2_WORKER_SUCCESS;
}

LV2_Worker_Status PluginWorker::respond(uint32_t size, const void* data) {
    return responses_.write(data, size) ? LV2_WORKER_SUCCESS : LV2_WORKER_ERR_NO_SPACE;
}

void PluginWorker::thread_main() {
    for (;;) {
        wake_.acquire();
        const uint32_t size = requests_.peek_size();
        if (size == 0) {
            if (stopping_.load()) return;
            continue;
        }
        requests_.read(request_scratch_.data(), static_cast<uint32_t>(request_scratch_.size()));
        iface_->work(instance_, respond_callback, this, size, request_scratch_.data());
        jobs_done_.fetch_add(1);
        pending_jobs_.fetch_sub(1);
    }
}

bool PluginWorker::deliver_one() {
    const uint32_t size = responses_.peek_size();
    if (size == 0) return false;
    responses_.read(response_scratch_.data(), static_cast<uint32_t>(response_scratch_.size()));
    if (iface_ != nullptr && iface_->work_response != nullptr) {
        iface_->work_response(instance_, size, response_scratch_.data());
    }
    return true;
}

void PluginWorker::deliver_responses() {
    while (deliver_one()) {
    }
}

void PluginWorker::end_run() {
    if (iface_ != nullptr && iface_->end_run != nullptr) iface_->end_run(instance_);
}

void PluginWorker::wait_until_idle() {
    for (;;) {
        while (pending_jobs_.load() != 0)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        bool delivered = false;
        while (deliver_one()) delivered = true;
        if (!delivered && pending_jobs_.load() == 0) return;
    }
}

}  // namespace stemsphere::host
