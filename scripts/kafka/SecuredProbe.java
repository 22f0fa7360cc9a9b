/*
 * Checks the secured listeners of the test broker with Kafka's own Java client; run by
 * `scripts/kafka-secured.sh check DIR`, which puts DIR/secured.env in the environment and
 * the broker's jars on the class path (java runs this single file from source).
 *
 * Each case opens an Admin client on one listener and asks for the cluster's nodes; the
 * test credentials must be accepted, and a wrong password, a client certificate of
 * another CA and no client certificate must be refused with an authentication error
 * (not a time-out). Prints one line a case; exits with 1 when any case went otherwise.
 */
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.errors.AuthenticationException;

public class SecuredProbe {
    public static void main(String[] args) throws Exception {
        String password = env("KAFKA_SCRAM_PASSWORD");
        boolean ok = check("SASL_SSL with SCRAM-SHA-512", true, scram(password))
                & check("SASL_SSL with a wrong password", false, scram(password + "-wrong"))
                & check("mutual TLS with the client certificate", true, mtls("client"))
                & check("mutual TLS with a certificate of another CA", false, mtls("rogue-client"))
                & check("mutual TLS without a client certificate", false, mtls(null));
        System.exit(ok ? 0 : 1);
    }

    /** Connects with `config`; true when the broker answered as `accepted` says it must. */
    static boolean check(String name, boolean accepted, Properties config) {
        String outcome;
        boolean wasAccepted = false;
        try (Admin admin = Admin.create(config)) {
            int nodes = admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).size();
            wasAccepted = true;
            outcome = "accepted (" + nodes + " node)";
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof AuthenticationException)) {
                System.out.println("FAILED: " + name + ": " + e.getCause());
                return false;
            }
            outcome = "refused (" + e.getCause().getClass().getSimpleName() + ")";
        } catch (Exception e) {
            System.out.println("FAILED: " + name + ": " + e);
            return false;
        }
        boolean ok = wasAccepted == accepted;
        System.out.println((ok ? "ok: " : "FAILED: ") + name + ": " + outcome);
        return ok;
    }

    static Properties scram(String password) {
        Properties config = tls(env("KAFKA_SASL_SSL_BROKERS"));
        config.put("security.protocol", "SASL_SSL");
        config.put("sasl.mechanism", "SCRAM-SHA-512");
        config.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule"
                + " required username=\"" + env("KAFKA_SCRAM_USER") + "\" password=\"" + password + "\";");
        return config;
    }

    /** A client of the mutual-TLS listener presenting `certificate`.pem, or nothing. */
    static Properties mtls(String certificate) throws Exception {
        Properties config = tls(env("KAFKA_MTLS_BROKERS"));
        config.put("security.protocol", "SSL");
        if (certificate != null) {
            Path dir = Path.of(env("KAFKA_SSE_TLS_DIR"));
            config.put("ssl.keystore.type", "PEM");
            config.put("ssl.keystore.certificate.chain", Files.readString(dir.resolve(certificate + ".pem")));
            config.put("ssl.keystore.key", Files.readString(dir.resolve(certificate + ".key")));
        }
        return config;
    }

    /** Settings every case shares: the listener, the test CA, short time-outs, no retries. */
    static Properties tls(String bootstrap) {
        Properties config = new Properties();
        config.put("bootstrap.servers", bootstrap);
        config.put("ssl.truststore.type", "PEM");
        config.put("ssl.truststore.location", env("KAFKA_SSE_TLS_DIR") + "/ca.pem");
        config.put("request.timeout.ms", "10000");
        config.put("default.api.timeout.ms", "20000");
        config.put("retries", "0");
        return config;
    }

    static String env(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set");
        }
        return value;
    }
}
