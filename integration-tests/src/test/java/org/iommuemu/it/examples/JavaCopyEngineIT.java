package org.iommuemu.it.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.file.Files;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.ClientSecurity;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FlushMode;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.SessionsRequest;
import org.junit.jupiter.api.Test;

/**
 * The Java example of docs/DEVICE-MODELS.md ({@link JavaCopyEngine}) against a real server over Netty on loopback:
 * this test plays the host (domain, buffers, maps, source data through the Driver and Machine services), the
 * example plays the device.
 */
class JavaCopyEngineIT {
    /** The guide quotes the example: every line of its java block is a line of JavaCopyEngine.java. */
    @Test
    void theGuideQuotesTheExampleAsItIs() throws Exception {
        String guide = Files.readString(NodeExample.root().resolve("docs").resolve("DEVICE-MODELS.md"));
        int start = guide.indexOf("```java\n");
        assertThat(start).as("docs/DEVICE-MODELS.md has a java block").isNotNegative();
        String block = guide.substring(start + 8, guide.indexOf("```", start + 8));
        Set<String> source = Files.readAllLines(NodeExample.root().resolve("integration-tests/src/test/java/org/"
                + "iommuemu/it/examples/JavaCopyEngine.java")).stream().map(String::strip)
                .collect(Collectors.toSet());
        assertThat(block.lines().map(String::strip).filter(l -> !l.isEmpty()).toList()).hasSizeGreaterThan(20)
                .allSatisfy(l -> assertThat(source).as("JavaCopyEngine.java has the guide's line").contains(l));
    }

    @Test
    void theGuidesJavaExampleCopiesThroughATranslatedDomain() throws Exception {
        try (BusServer server = BusServer.netty(new Machine(MachineConfig.defaults()), "127.0.0.1", 0).start()) {
            ManagedChannel ch = NettyChannelBuilder.forTarget(server.target()).usePlaintext().build();
            try {
                DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(ch);
                MachineGrpc.MachineBlockingStub cpu = MachineGrpc.newBlockingStub(ch);
                long domain = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                        .setStage(DomainStage.STAGE_1).setGranule(4096).setInputBits(48).setFlush(FlushMode.STRICT)
                        .build()).getDomain();
                long src = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(32768).build()).getPa();
                long dst = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(32768).build()).getPa();
                driver.map(MapRequest.newBuilder().setDomain(domain).setIova(0x1000_0000L).setPa(src).setSize(32768)
                        .setProt(Prot.newBuilder().setRead(true)).build());
                driver.map(MapRequest.newBuilder().setDomain(domain).setIova(0x2000_0000L).setPa(dst).setSize(32768)
                        .setProt(Prot.newBuilder().setRead(true).setWrite(true)).build());
                byte[] data = new byte[30000];
                new Random(5).nextBytes(data);
                cpu.memWrite(MemWriteRequest.newBuilder().setAddress(src).setData(ByteString.copyFrom(data)).build());
                driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(domain).setIommu("smmu0")
                        .setStreamId(0x31).build());

                JavaCopyEngine.Report r = JavaCopyEngine.run(server.target(), ClientSecurity.NONE, "smmu0", 0x31,
                        0x1000_0000L, 0x2000_0000L, 30000, 0x3000_0000L);

                assertThat(r.requests()).isEqualTo(16); // 8 reads and 8 writes, the last of each 1328 bytes
                assertThat(r.fault()).isEqualTo("TRANSLATION at 0x30000000");
                assertThat(cpu.memRead(MemReadRequest.newBuilder().setAddress(dst).setLength(30000).build())
                        .getData().toByteArray()).isEqualTo(data);
                var ended = cpu.sessions(SessionsRequest.getDefaultInstance()).getEndedList();
                assertThat(ended).singleElement().satisfies(s -> {
                    assertThat(s.getName()).isEqualTo("java-copy");
                    assertThat(s.getReads()).isEqualTo(10); // 8 pipelined, the unary read-back, the faulting one
                    assertThat(s.getWrites()).isEqualTo(8);
                    assertThat(s.getFaults()).isEqualTo(1);
                });
                // the source mapped read-only: the engine cannot copy the wrong way round
                assertThatThrownBy(() -> JavaCopyEngine.run(server.target(), ClientSecurity.NONE, "smmu0", 0x31,
                        0x2000_0000L, 0x1000_0000L, 4096, 0x3000_0000L)).hasMessageContaining("PERMISSION");
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }
}
