package org.iommuemu.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.DmaWriteRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The bus over real Netty on loopback. */
class NettyBusIT {
    private Machine machine;
    private BusServer server;
    private DmaClient client;
    private long ram;

    @BeforeEach
    void setUp() throws Exception {
        machine = new Machine(MachineConfig.defaults());
        server = BusServer.netty(machine, "127.0.0.1", 0).start();
        client = DmaClient.connect(server.target());
        ram = machine.memory().regions().get(0).base();
    }

    @AfterEach
    void tearDown() {
        client.close();
        server.close();
    }

    @Test
    void dmaOverLoopbackTcp() {
        assertThat(server.target()).startsWith("127.0.0.1:");
        DmaSession s = client.attach("nic", "smmu0", 0x11);
        byte[] data = new byte[256 * 1024];
        new Random(5).nextBytes(data);
        assertThat(s.write(ram + 0x1000, data).isOk()).isTrue();
        DmaResult r = s.read(ram + 0x1000, data.length);
        assertThat(r.data().toByteArray()).isEqualTo(data);

        machine.iommu("smmu0").mmioWrite(0x44, 4, (1L << 31) | (1L << 20));
        assertThat(s.read(ram, 4).fault().getKind()).isEqualTo(FaultKind.ABORTED);

        DmaClient second = DmaClient.connect(server.target());
        try {
            assertThatThrownBy(() -> second.attach("thief", "smmu0", 0x11))
                    .isInstanceOf(StatusRuntimeException.class)
                    .hasMessageContaining("ALREADY_EXISTS");
        } finally {
            second.close();
        }
    }

    @Test
    void aMessageOverTheServersLimitIsResourceExhausted() {
        DmaSession s = client.attach("nic", "smmu0", 1);
        DmaGrpc.DmaBlockingStub raw = DmaGrpc.newBlockingStub(client.channel());
        ByteString huge = ByteString.copyFrom(new byte[(int) machine.limits().maxMessageBytes() + 1]);
        assertThatThrownBy(() -> raw.write(DmaWriteRequest.newBuilder().setSessionId(s.id()).setIova(ram)
                .setData(huge).build()))
                .isInstanceOf(StatusRuntimeException.class)
                .satisfies(e -> assertThat(((StatusRuntimeException) e).getStatus().getCode())
                        .isEqualTo(Status.Code.RESOURCE_EXHAUSTED));
        assertThat(s.read(ram, 8).isOk()).as("the server keeps serving").isTrue();
    }

    @Test
    void tenThousandPipelinedRequestsEachAnsweredUnderItsOwnTag() throws Exception {
        DmaSession s = client.attach("engine", "smmu0", 2);
        byte[] pattern = new byte[64 * 4096];
        new Random(7).nextBytes(pattern);
        assertThat(s.write(ram, pattern).isOk()).isTrue();

        int n = 10_000;
        List<TransferReply> replies = new ArrayList<>(n);
        CompletableFuture<Void> done = new CompletableFuture<>();
        StreamObserver<TransferRequest> req = DmaGrpc.newStub(client.channel()).transfer(new StreamObserver<>() {
            @Override
            public void onNext(TransferReply r) {
                replies.add(r);
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
        Random tags = new Random(11);
        long[] sent = new long[n];
        for (int i = 0; i < n; i++) {
            sent[i] = tags.nextLong();
            req.onNext(TransferRequest.newBuilder().setTag(sent[i]).setSessionId(s.id()).setOp(DmaOp.READ)
                    .setIova(ram + (long) (i % 64) * 4096).setLength(4096).build());
        }
        req.onCompleted();
        done.get(120, TimeUnit.SECONDS);
        assertThat(replies).hasSize(n);
        for (int i = 0; i < n; i++) {
            TransferReply r = replies.get(i);
            assertThat(r.getTag()).isEqualTo(sent[i]);
            assertThat(r.hasError() || r.hasFault()).isFalse();
            int off = (i % 64) * 4096;
            assertThat(r.getData()).isEqualTo(ByteString.copyFrom(pattern, off, 4096));
        }
    }

    @Test
    void theClientLibraryKeepsItsWindowAndMatchesTags() throws Exception {
        DmaSession s = client.attach("engine", "smmu0", 3);
        List<CompletableFuture<DmaResult>> futures = new ArrayList<>();
        try (Transfer t = s.openTransfer(16)) {
            for (int i = 0; i < 10_000; i++) {
                futures.add(t.write(ram + 8L * i, ByteString.copyFrom(longBytes(i))));
                assertThat(t.inFlight()).isLessThanOrEqualTo(16);
            }
        }
        for (CompletableFuture<DmaResult> f : futures) {
            assertThat(f.get().isOk()).isTrue();
        }
        for (int i = 0; i < 10_000; i += 997) {
            assertThat(machine.memory().read64(ram + 8L * i)).isEqualTo(i);
        }
    }

    @Test
    void aClientKilledMidTransferReleasesItsStreamId() throws Exception {
        String javaBin = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        Process p = new ProcessBuilder(javaBin, "-cp", System.getProperty("java.class.path"),
                StreamingClientMain.class.getName(), server.target(), "smmu0", "77", Long.toString(ram))
                .redirectErrorStream(true).start();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            awaitLine(out, "STREAMING", 60);
            assertThat(server.liveSessions()).isEqualTo(1);
            assertThatThrownBy(() -> client.attach("early", "smmu0", 77)).hasMessageContaining("ALREADY_EXISTS");
            p.destroyForcibly();
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        } finally {
            p.destroyForcibly();
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (server.liveSessions() != 0 && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertThat(server.liveSessions()).as("the dead client's session was released").isZero();
        assertThat(client.attach("heir", "smmu0", 77).streamId()).isEqualTo(77);
    }

    @Test
    void describeOverTcpAgreesWithTheMachine() {
        ManagedChannel ch = NettyChannelBuilder.forTarget(server.target()).usePlaintext().build();
        try {
            var d = org.iommuemu.proto.v1.MachineGrpc.newBlockingStub(ch)
                    .describe(org.iommuemu.proto.v1.DescribeRequest.getDefaultInstance());
            assertThat(d.getIommusCount()).isEqualTo(machine.iommus().size());
            assertThat(d.getLimits().getMaxMessageBytes()).isEqualTo(machine.limits().maxMessageBytes());
            assertThatThrownBy(() -> DmaGrpc.newBlockingStub(ch).attach(AttachRequest.newBuilder().setName("x")
                    .setIommu("none").build())).hasMessageContaining("NOT_FOUND");
        } finally {
            ch.shutdownNow();
        }
    }

    static void awaitLine(BufferedReader reader, String wanted, int seconds) throws Exception {
        CompletableFuture<Void> seen = CompletableFuture.runAsync(() -> {
            try {
                String line;
                while ((line = reader.readLine()) != null) {
                    if (line.contains(wanted)) {
                        return;
                    }
                }
                throw new IllegalStateException("the process ended before printing " + wanted);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        seen.get(seconds, TimeUnit.SECONDS);
    }

    private static byte[] longBytes(long v) {
        return java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }
}
