package dk;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.Build;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

/**
 * A single Elasticsearch node for dataknobs' tests, inside this JVM. The transport-netty4
 * module (HTTP) is loaded from {@code <home>/modules/transport-netty4}, which this launcher
 * fills with links to the jars named by {@code dk.es.module.jars} (they must not be on the
 * classpath too: Elasticsearch's jar-hell check refuses that). It binds to 127.0.0.1 only,
 * writes {@code <home>/pid} when it starts and {@code <home>/ready} (the URL) once it answers.
 *
 * <p>System properties: {@code dk.es.home}, {@code dk.es.port} (HTTP, default 9201),
 * {@code dk.es.transport.port} (default 9400-9499), {@code dk.es.module.jars}. Started by
 * scripts/elasticsearch.sh.
 */
public final class ElasticsearchNode {

    public static void main(String[] args) throws Exception {
        Path home = Paths.get(System.getProperty("dk.es.home", "/var/tmp/dataknobs-elasticsearch/node"))
            .toAbsolutePath();
        String port = System.getProperty("dk.es.port", "9201");
        String transportPort = System.getProperty("dk.es.transport.port", "9400-9499");
        String moduleJars = System.getProperty("dk.es.module.jars", "");
        Path config = home.resolve("config");
        Path ready = home.resolve("ready");
        Files.createDirectories(config);
        Files.deleteIfExists(ready);
        Files.write(home.resolve("pid"), (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8));

        // The HTTP module as a distribution lays it out: its jars and a plugin descriptor.
        Path modules = home.resolve("modules");
        Path netty = modules.resolve("transport-netty4");
        if (Files.exists(netty)) {
            try (var old = Files.list(netty)) {
                for (Path p : (Iterable<Path>) old::iterator) {
                    Files.delete(p);
                }
            }
        }
        Files.createDirectories(netty);
        for (String jar : moduleJars.split(File.pathSeparator)) {
            if (!jar.isEmpty()) {
                Path source = Paths.get(jar);
                Files.createSymbolicLink(netty.resolve(source.getFileName()), source);
            }
        }
        String version = Build.current().version();
        Files.write(netty.resolve("plugin-descriptor.properties"), String.join("\n",
            "description=Netty 4 based transport implementation",
            "version=" + version,
            "name=transport-netty4",
            "classname=org.elasticsearch.transport.netty4.Netty4Plugin",
            "java.version=17",
            "elasticsearch.version=" + version,
            "extended.plugins=",
            "has.native.controller=false",
            "licensed=false",
            "").getBytes(StandardCharsets.UTF_8));

        Settings settings = Settings.builder()
            .put("cluster.name", "dataknobs-test-es")
            .put("node.name", "dataknobs-test-es-node")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", transportPort)
            .put("discovery.type", "single-node")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // The start script deletes the test indexes of earlier runs by pattern.
            .put("action.destructive_requires_name", false)
            .put("cluster.max_shards_per_node", 100000)
            .build();
        LogConfigurator.loadLog4jPlugins();
        LogConfigurator.configureESLogging();
        LogConfigurator.configureWithoutConfig(settings);
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), config, () -> "dataknobs-test-es-node");

        long started = System.nanoTime();
        Node node;
        try {
            PluginsLoader loader = PluginsLoader.createPluginsLoader(
                PluginsLoader.loadModulesBundles(modules), Set.of(), Map.of(), false);
            node = new Node(environment, loader);
            node.start();
        } catch (Throwable t) {
            System.err.println("dataknobs-elasticsearch: the node failed to start");
            t.printStackTrace();
            System.exit(1);
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        final Node running = node;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                Files.deleteIfExists(ready);
                running.close();
                running.awaitClose(20, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "dataknobs-elasticsearch-shutdown"));

        // One node: new indexes get no replicas (an index template; the node has no setting).
        String url = "http://127.0.0.1:" + port;
        HttpResponse<String> put = HttpClient.newHttpClient().send(
            HttpRequest.newBuilder(URI.create(url + "/_index_template/dataknobs_no_replicas"))
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(
                    "{\"index_patterns\":[\"*\"],\"priority\":0,"
                        + "\"template\":{\"settings\":{\"number_of_replicas\":0}}}"))
                .build(),
            HttpResponse.BodyHandlers.ofString());
        if (put.statusCode() != 200) {
            System.err.println("dataknobs-elasticsearch: index template refused: " + put.body());
        }

        Path tmp = home.resolve("ready.tmp");
        Files.write(tmp, (url + "\n").getBytes(StandardCharsets.UTF_8));
        Files.move(tmp, ready, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.printf("dataknobs-elasticsearch: READY %s (Elasticsearch %s, pid %d, started in %.1f s)%n",
            url, version, ProcessHandle.current().pid(), (System.nanoTime() - started) / 1e9);
        System.out.flush();
        stopped.await();
    }
}
