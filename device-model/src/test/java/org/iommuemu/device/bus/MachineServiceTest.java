package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.InterruptsRequest;
import org.iommuemu.proto.v1.IommuKind;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemCompareExchangeReply;
import org.iommuemu.proto.v1.MemCompareExchangeRequest;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class MachineServiceTest {
    private BusFixture bus;
    private MachineGrpc.MachineBlockingStub cpu;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        cpu = bus.cpu();
    }

    @AfterEach
    void tearDown() throws Exception {
        bus.close();
    }

    private long mmioRead(String iommu, long offset, int width) {
        return cpu.mmioRead(MmioReadRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width).build())
                .getValue();
    }

    private void mmioWrite(String iommu, long offset, int width, long value) {
        cpu.mmioWrite(MmioWriteRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width)
                .setValue(value).build());
    }

    @Test
    void describeReportsInstancesRamAndLimits() {
        DescribeReply d = cpu.describe(DescribeRequest.getDefaultInstance());
        assertThat(d.getApiVersion()).isEqualTo("v1");
        assertThat(d.getServerVersion()).isNotBlank();
        assertThat(d.getIommusList()).extracting(i -> i.getName() + ":" + i.getKind())
                .containsExactly("smmu0:" + IommuKind.SMMUV3, "dmar0:" + IommuKind.VTD);
        assertThat(d.getIommus(0).getMmioSize()).isEqualTo(0x20000);
        assertThat(d.getIommus(0).getStreamIdBits()).isEqualTo(16);
        assertThat(d.getIommus(0).getTranslationModelled()).as("SMMUv3").isTrue();
        assertThat(d.getIommus(1).getTranslationModelled()).as("VT-d").isTrue();
        assertThat(d.getRamList()).singleElement().satisfies(r -> {
            assertThat(r.getBase()).isEqualTo(0x8000_0000L);
            assertThat(r.getSize()).isEqualTo(4L << 30);
        });
        assertThat(d.getLimits().getMaxDmaLength()).isEqualTo(1 << 20);
        assertThat(d.getLimits().getMaxMessageBytes()).isGreaterThan(1 << 20);
        assertThat(d.getLimits().getMaxSessions()).isEqualTo(1024);
        assertThat(d.getLimits().getMaxTransferInFlight()).isEqualTo(128);
        assertThat(d.getMsiDoorbellBase()).isEqualTo(0x0800_0000L);
        assertThat(d.getMsiDoorbellSize()).isEqualTo(0x1_0000L);
        assertThat(d.getDriverHeapBase()).as("the upper half of the 4 GiB at 0x8000_0000").isEqualTo(0x1_0000_0000L);
        assertThat(d.getDriverHeapSize()).isEqualTo(2L << 30);
    }

    @Test
    void mmioReadsIdentificationRegisters() {
        long idr0 = mmioRead("smmu0", 0x00, 4);
        assertThat(Bits.extract(idr0, 2, 2)).as("IDR0.TTF = AArch64").isEqualTo(2);
        assertThat(Bits.extract(idr0, 21, 2)).as("IDR0.TTENDIAN = little-endian").isEqualTo(2);
        long idr1 = mmioRead("smmu0", 0x04, 4);
        assertThat(Bits.extract(idr1, 0, 6)).as("IDR1.SIDSIZE").isEqualTo(16);
        long cap = mmioRead("dmar0", 0x08, 8);
        assertThat(Bits.extract(cap, 16, 6)).as("CAP.MGAW").isEqualTo(47);
        assertThat(mmioRead("dmar0", 0x08, 4)).as("low half of CAP").isEqualTo(cap & 0xFFFF_FFFFL);
        assertThat(mmioRead("dmar0", 0x0C, 4)).as("high half of CAP").isEqualTo(cap >>> 32);
    }

    @Test
    void mmioWriteReachesTheDevice() {
        mmioWrite("smmu0", 0x20, 4, 0x0C); // CR0: CMDQEN | EVENTQEN
        assertThat(mmioRead("smmu0", 0x24, 4)).as("CR0ACK").isEqualTo(0x0C);
        assertThat(mmioRead("smmu0", 0x1000, 4)).as("an unknown offset reads zero").isZero();
        mmioWrite("smmu0", 0x1000, 4, 0xFFFF_FFFFL);
        assertThat(mmioRead("smmu0", 0x1000, 4)).isZero();
    }

    @Test
    void badMmioRequestsAreRefusedWithTheField() {
        assertStatus(() -> mmioRead("smmu0", 0x20, 2), Status.Code.INVALID_ARGUMENT, "width must be 4 or 8");
        assertStatus(() -> mmioRead("smmu0", 0x22, 4), Status.Code.INVALID_ARGUMENT, "not a multiple of width");
        assertStatus(() -> mmioRead("smmu0", 0x84, 8), Status.Code.INVALID_ARGUMENT, "offset 0x84");
        assertStatus(() -> mmioRead("smmu0", 0x20000, 4), Status.Code.OUT_OF_RANGE, "register window");
        assertStatus(() -> mmioRead("smmu0", -8, 8), Status.Code.OUT_OF_RANGE, "register window");
        assertStatus(() -> mmioRead("nope", 0, 4), Status.Code.NOT_FOUND, "iommu 'nope' not found");
        assertStatus(() -> mmioRead("", 0, 4), Status.Code.INVALID_ARGUMENT, "iommu is required");
        assertStatus(() -> mmioWrite("smmu0", 0x20, 4, 1L << 32), Status.Code.INVALID_ARGUMENT,
                "does not fit in a 4-byte write");
    }

    @Test
    void memWriteThenMemRead() {
        long pa = bus.ramBase() + 0x1234;
        ByteString data = ByteString.copyFromUtf8("physical memory over the bus");
        cpu.memWrite(MemWriteRequest.newBuilder().setAddress(pa).setData(data).build());
        ByteString back = cpu.memRead(MemReadRequest.newBuilder().setAddress(pa).setLength(data.size()).build())
                .getData();
        assertThat(back).isEqualTo(data);
        ByteString fresh = cpu.memRead(MemReadRequest.newBuilder().setAddress(bus.ramBase() + 0x10_0000).setLength(64)
                .build()).getData();
        assertThat(fresh.toByteArray()).as("never-written RAM reads as zero").containsOnly(0);
    }

    @Test
    void alignedWordsAndOddRangesAreLittleEndianBothWays() throws Exception {
        long pa = bus.ramBase() + 0x3000;
        byte[] bytes = new byte[24];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) (0xA0 + i);
        }
        // 8-aligned whole words, 4-aligned whole words, and a range that is neither
        long[][] cases = {{pa, 24}, {pa + 0x104, 12}, {pa + 0x203, 5}};
        for (long[] c : cases) {
            long at = c[0];
            int len = (int) c[1];
            cpu.memWrite(MemWriteRequest.newBuilder().setAddress(at).setData(ByteString.copyFrom(bytes, 0, len))
                    .build());
            for (int i = 0; i < len; i++) {
                assertThat(bus.machine.memory().read8(at + i)).as("byte %d of %d at %x", i, len, at)
                        .isEqualTo(0xA0 + i);
            }
            assertThat(cpu.memRead(MemReadRequest.newBuilder().setAddress(at).setLength(len).build()).getData())
                    .isEqualTo(ByteString.copyFrom(bytes, 0, len));
        }
        assertThat(bus.machine.memory().read64(pa)).isEqualTo(0xA7A6_A5A4_A3A2_A1A0L);
        assertThat(bus.machine.memory().read32(pa + 0x108)).isEqualTo(0xA7A6_A5A4);
    }

    @Test
    void anAlignedWordWrittenOverTheBusIsNeverSeenTornAndViceVersa() throws Exception {
        long pa = bus.ramBase() + 0x4000;
        long a = 0x1111_1111_1111_1111L;
        long b = 0xEEEE_EEEE_EEEE_EEEEL;
        byte[] aBytes = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(a).array();
        byte[] bBytes = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(b).array();
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicLong torn = new java.util.concurrent.atomic.AtomicLong();
        Thread device = new Thread(() -> { // the device side: reads and writes the word as a walker would
            try {
                while (!stop.get()) {
                    long v = bus.machine.memory().read64(pa);
                    if (v != a && v != b && v != 0) {
                        torn.incrementAndGet();
                    }
                    bus.machine.memory().write64(pa + 8, (v & 1) == 0 ? a : b);
                }
            } catch (MemoryAccessException e) {
                throw new AssertionError(e);
            }
        });
        device.start();
        try {
            for (int i = 0; i < 500; i++) {
                cpu.memWrite(MemWriteRequest.newBuilder().setAddress(pa)
                        .setData(ByteString.copyFrom((i & 1) == 0 ? aBytes : bBytes)).build());
                long v = java.nio.ByteBuffer.wrap(cpu.memRead(MemReadRequest.newBuilder().setAddress(pa + 8)
                        .setLength(8).build()).getData().toByteArray()).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                        .getLong();
                assertThat(v).as("a word the device writes is read whole").isIn(0L, a, b);
            }
        } finally {
            stop.set(true);
            device.join(10_000);
        }
        assertThat(torn).as("a word written over the bus is read whole by the device").hasValue(0);
    }

    @Test
    void memoryRequestsOutsideRamOrTooLargeAreRefused() {
        long end = bus.ramEnd();
        assertStatus(() -> cpu.memRead(MemReadRequest.newBuilder().setAddress(end - 8).setLength(16).build()),
                Status.Code.OUT_OF_RANGE, "is not all RAM");
        assertStatus(() -> cpu.memWrite(MemWriteRequest.newBuilder().setAddress(0)
                .setData(ByteString.copyFromUtf8("x")).build()), Status.Code.OUT_OF_RANGE, "is not all RAM");
        assertStatus(() -> cpu.memRead(MemReadRequest.newBuilder().setAddress(bus.ramBase()).setLength(0).build()),
                Status.Code.INVALID_ARGUMENT, "length must be at least 1");
        assertStatus(() -> cpu.memRead(MemReadRequest.newBuilder().setAddress(bus.ramBase()).setLength(2 << 20)
                .build()), Status.Code.RESOURCE_EXHAUSTED, "max_mem_access_length");
        assertStatus(() -> cpu.memRead(MemReadRequest.newBuilder().setAddress(-4).setLength(8).build()),
                Status.Code.OUT_OF_RANGE, "wraps past 2^64");
        assertStatus(() -> cpu.memWrite(MemWriteRequest.newBuilder().setAddress(bus.ramBase()).build()),
                Status.Code.INVALID_ARGUMENT, "data length must be at least 1");
    }

    @Test
    void memCompareExchangeSwapsOnlyOnAMatchAndRefusesBadAddresses() throws Exception {
        long pa = bus.ramBase() + 0x2000;
        bus.machine.memory().write64(pa, 0x1111L);
        MemCompareExchangeReply miss = cpu.memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(pa)
                .setExpected(0x2222L).setDesired(0x3333L).build());
        assertThat(miss.getWitness()).isEqualTo(0x1111L);
        assertThat(bus.machine.memory().read64(pa)).as("no swap on a mismatch").isEqualTo(0x1111L);
        MemCompareExchangeReply hit = cpu.memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(pa)
                .setExpected(0x1111L).setDesired(0x8000_0000_0000_0003L).build());
        assertThat(hit.getWitness()).isEqualTo(0x1111L);
        assertThat(bus.machine.memory().read64(pa)).isEqualTo(0x8000_0000_0000_0003L);
        assertStatus(() -> cpu.memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(pa + 4).build()),
                Status.Code.INVALID_ARGUMENT, "is not 8-byte aligned");
        assertStatus(() -> cpu.memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(bus.ramEnd())
                .build()), Status.Code.OUT_OF_RANGE, "is not all RAM");
        assertStatus(() -> cpu.memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(-8).build()),
                Status.Code.OUT_OF_RANGE, "[0xfffffffffffffff8, 0xffffffffffffffff] is not all RAM");
    }

    @Test
    void nothingIsWrittenWhenPartOfAMemWriteIsNotRam() throws Exception {
        long end = bus.ramEnd();
        byte[] data = new byte[32];
        java.util.Arrays.fill(data, (byte) 0x5A);
        assertStatus(() -> cpu.memWrite(MemWriteRequest.newBuilder().setAddress(end - 16)
                .setData(ByteString.copyFrom(data)).build()), Status.Code.OUT_OF_RANGE, "not all RAM");
        assertThat(bus.machine.memory().read64(end - 16)).isZero();
        assertThat(bus.machine.memory().read64(end - 8)).isZero();
    }

    @Test
    void interruptsReachSubscribersInOrderAndMsisToRamLandInMemory() throws Exception {
        Iterator<Interrupt> all = cpu.interrupts(InterruptsRequest.getDefaultInstance());
        Iterator<Interrupt> onlyVtd = bus.cpu().interrupts(InterruptsRequest.newBuilder().addIommus("dmar0").build());
        awaitSubscribers(2);
        long msiTarget = bus.ramBase() + 0x40;
        bus.machine.interrupts().wired("smmu0", "eventq");
        bus.machine.interrupts().msi("dmar0", "fault-event", msiTarget, 0x4321);
        bus.machine.interrupts().msi("smmu0", "gerror", 0x0800_0040L, 7);

        Interrupt a = all.next();
        Interrupt b = all.next();
        Interrupt c = all.next();
        assertThat(a.getIommu()).isEqualTo("smmu0");
        assertThat(a.getSource()).isEqualTo("eventq");
        assertThat(a.getMsi()).isFalse();
        assertThat(b.getMsi()).isTrue();
        assertThat(b.getMsiAddress()).isEqualTo(msiTarget);
        assertThat(b.getMsiData()).isEqualTo(0x4321);
        assertThat(c.getSequence()).isEqualTo(b.getSequence() + 1).isEqualTo(a.getSequence() + 2);
        assertThat(c.getDropped()).isZero();

        Interrupt v = onlyVtd.next();
        assertThat(v.getIommu()).isEqualTo("dmar0");
        assertThat(v.getSequence()).isEqualTo(b.getSequence());
        assertThat(bus.machine.memory().read32(msiTarget)).as("MSI write landed in RAM").isEqualTo(0x4321);
    }

    @Test
    void interruptsHeadersArriveOnceTheSubscriptionIsInPlaceAndBeforeAnyInterrupt() throws Exception {
        CompletableFuture<Integer> subscribersAtHeaders = new CompletableFuture<>();
        java.util.concurrent.BlockingQueue<Interrupt> received = new java.util.concurrent.LinkedBlockingQueue<>();
        io.grpc.ClientCall<InterruptsRequest, Interrupt> call = bus.channel()
                .newCall(MachineGrpc.getInterruptsMethod(), io.grpc.CallOptions.DEFAULT);
        call.start(new io.grpc.ClientCall.Listener<>() {
            @Override
            public void onHeaders(io.grpc.Metadata headers) {
                subscribersAtHeaders.complete(bus.machine.interrupts().subscribers());
            }

            @Override
            public void onMessage(Interrupt message) {
                received.add(message);
                call.request(1);
            }
        }, new io.grpc.Metadata());
        call.sendMessage(InterruptsRequest.newBuilder().addIommus("smmu0").build());
        call.halfClose();
        call.request(1);
        assertThat(subscribersAtHeaders.get(10, TimeUnit.SECONDS))
                .as("headers come without any interrupt, after the subscription").isEqualTo(1);
        assertThat(received).isEmpty();
        bus.machine.interrupts().wired("smmu0", "gerror");
        Interrupt first = received.poll(10, TimeUnit.SECONDS);
        assertThat(first).isNotNull();
        assertThat(first.getSource()).isEqualTo("gerror");
        call.cancel("done", null);
    }

    @Test
    void aRefusedInterruptsRequestEndsWithoutHeaders() throws Exception {
        CompletableFuture<io.grpc.Status> closed = new CompletableFuture<>();
        java.util.concurrent.atomic.AtomicBoolean headers = new java.util.concurrent.atomic.AtomicBoolean();
        io.grpc.ClientCall<InterruptsRequest, Interrupt> call = bus.channel()
                .newCall(MachineGrpc.getInterruptsMethod(), io.grpc.CallOptions.DEFAULT);
        call.start(new io.grpc.ClientCall.Listener<>() {
            @Override
            public void onHeaders(io.grpc.Metadata h) {
                headers.set(true);
            }

            @Override
            public void onClose(io.grpc.Status status, io.grpc.Metadata trailers) {
                closed.complete(status);
            }
        }, new io.grpc.Metadata());
        call.sendMessage(InterruptsRequest.newBuilder().addIommus("nope").build());
        call.halfClose();
        call.request(1);
        io.grpc.Status s = closed.get(10, TimeUnit.SECONDS);
        assertThat(s.getCode()).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(s.getDescription()).contains("iommu 'nope' not found");
        assertThat(headers).as("no subscription, so no sign of one").isFalse();
    }

    @Test
    void aSlowSubscriberIsToldHowManyInterruptsItMissed() throws Exception {
        List<Interrupt> received = new ArrayList<>();
        CompletableFuture<Void> done = new CompletableFuture<>();
        io.grpc.stub.ClientCallStreamObserver<?>[] call = new io.grpc.stub.ClientCallStreamObserver<?>[1];
        MachineGrpc.newStub(bus.channel()).interrupts(InterruptsRequest.getDefaultInstance(),
                new io.grpc.stub.ClientResponseObserver<InterruptsRequest, Interrupt>() {
                    @Override
                    public void beforeStart(io.grpc.stub.ClientCallStreamObserver<InterruptsRequest> s) {
                        call[0] = s;
                        s.disableAutoRequestWithInitial(0); // read nothing until told
                    }

                    @Override
                    public void onNext(Interrupt value) {
                        received.add(value);
                        call[0].request(1);
                    }

                    @Override
                    public void onError(Throwable t) {
                        done.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                        done.complete(null);
                    }
                });
        awaitSubscribers(1);
        int raised = MachineService.INTERRUPT_BUFFER + 500;
        for (int i = 0; i < raised; i++) {
            bus.machine.interrupts().wired("smmu0", "eventq");
        }
        call[0].request(1);
        bus.server.shutdown(java.time.Duration.ofSeconds(10)); // completes the stream after the buffer drains
        done.get(20, TimeUnit.SECONDS);
        long dropped = received.stream().mapToLong(Interrupt::getDropped).sum();
        assertThat(dropped).as("some interrupts could not be buffered").isPositive();
        assertThat(received.size() + dropped).as("every interrupt delivered or counted").isEqualTo(raised);
        for (int i = 1; i < received.size(); i++) {
            assertThat(received.get(i).getSequence())
                    .isEqualTo(received.get(i - 1).getSequence() + 1 + received.get(i - 1).getDropped());
        }
        assertThat(received.get(received.size() - 1).getDropped())
                .as("the interrupts lost at the end are counted on the last one delivered").isPositive();
    }

    @Test
    void unknownInstanceInTheInterruptFilterIsNotFound() {
        assertStatus(() -> cpu.interrupts(InterruptsRequest.newBuilder().addIommus("nope").build()).hasNext(),
                Status.Code.NOT_FOUND, "iommu 'nope'");
    }

    @Test
    void shutdownCompletesInterruptStreams() throws Exception {
        Iterator<Interrupt> it = cpu.interrupts(InterruptsRequest.getDefaultInstance());
        awaitSubscribers(1);
        bus.server.shutdown(java.time.Duration.ofSeconds(5));
        assertThat(it.hasNext()).as("the stream completed normally").isFalse();
    }

    @Test
    void healthAndReflectionServicesAnswer() throws Exception {
        HealthCheckResponse h = HealthGrpc.newBlockingStub(bus.channel())
                .check(HealthCheckRequest.newBuilder().setService("iommuemu.v1.Dma").build());
        assertThat(h.getStatus()).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);

        CompletableFuture<List<String>> services = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> req = ServerReflectionGrpc.newStub(bus.channel())
                .serverReflectionInfo(new StreamObserver<>() {
                    @Override
                    public void onNext(ServerReflectionResponse r) {
                        services.complete(r.getListServicesResponse().getServiceList().stream()
                                .map(ServiceResponse::getName).toList());
                    }

                    @Override
                    public void onError(Throwable t) {
                        services.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {}
                });
        req.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        assertThat(services.get(10, TimeUnit.SECONDS)).contains("iommuemu.v1.Machine", "iommuemu.v1.Dma",
                "grpc.health.v1.Health");
        req.onCompleted();
    }

    /** Waits until the server has registered {@code n} interrupt subscriptions (subscribing is asynchronous). */
    private void awaitSubscribers(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (bus.machine.interrupts().subscribers() < n) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("subscriptions did not arrive");
            }
            Thread.sleep(5);
        }
    }
}
