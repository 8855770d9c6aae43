//! The console routes by itself: from an empty database through the
//! checklist (a platform key on the simulator, a supplier, a gateway token, the
//! routing switch) to a real HTTP request through the console's own gateway,
//! which turns the "waiting for the first request" light green; the close
//! question (Cancel, then "Stop routing and quit", which flushes the ledger and
//! releases the routing lock); the switch refused while `switchboard serve`
//! routes the file, naming its process and host, and a killed holder detected;
//! `serve` and a second console refused while a console routes, naming it; a
//! taken port failing clearly (the lock released); and the switch remembered
//! per database.

use super::*;
use switchboard::console::{ConsoleRouting, RoutingState};
use switchboard::engine::keys::KeyService;
use switchboard::sim::{SimAccountConfig, SimConfig, Simulator};
use switchboard::store::{RoutingLock, host_name};
use switchboard::ui::views::routing::CloseChoice;

const PLATFORM_KEY: &str = "sk-console-routing-platform-0123456789abcd";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The console service as `run_console` builds it for a database file: the key
/// service and the console's routing on the same keychain, the real gateway.
pub(super) fn routing_harness(
    f: &Fixture,
    storage: Option<&dyn eframe::Storage>,
    db_label: &str,
) -> (Harness<'static, ConsoleApp>, Arc<ConsoleRouting>) {
    let vault = test_vault();
    let keys = f._rt.block_on(async {
        let providers = Providers::new(ProvidersConfig::default()).unwrap();
        Arc::new(KeyService::new(f.store.clone(), vault.clone(), Arc::new(providers), Arc::new(SystemClock)))
    });
    let routing = switchboard::cli::console_routing::console_routing(vault);
    let opts = ServiceOptions { live: Some(LiveServices::keys_only(keys)), routing: Some(routing.clone()), ..Default::default() };
    let (handle, events) =
        console::spawn_with(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}), opts);
    let app = ConsoleApp::new(handle, events, AppOptions { can_route: true, db_label: db_label.into(), ..start(View::Overview) }, storage);
    let h = Harness::builder()
        .with_size(egui::vec2(1360.0, 860.0))
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app);
    (h, routing)
}

fn nav(h: &mut Harness<'static, ConsoleApp>, view: &str) {
    button(h, view).click();
    h.step();
    h.step();
}

fn switch<'a>(h: &'a Harness<'static, ConsoleApp>) -> egui_kittest::Node<'a> {
    h.get_by(|n| n.role() == egui::accesskit::Role::CheckBox && n.label().as_deref() == Some("Route requests from this console"))
}

fn set_port(h: &mut Harness<'static, ConsoleApp>, port: u16) {
    field(h, "Port").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    field(h, "Port").type_text(&port.to_string());
    h.step();
}

fn request_close(h: &mut Harness<'static, ConsoleApp>) {
    h.input_mut().viewports.entry(egui::ViewportId::ROOT).or_default().events.push(egui::ViewportEvent::Close);
    h.step();
}

fn cancelled_close(h: &Harness<'static, ConsoleApp>) -> bool {
    h.output().viewport_output.get(&egui::ViewportId::ROOT).is_some_and(|v| v.commands.contains(&egui::ViewportCommand::CancelClose))
}

/// A chat request over loopback HTTP, as a client of the gateway sends it.
fn chat(f: &Fixture, url: &str, token: &str) -> (u16, String) {
    f._rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
        let r = client
            .post(format!("{url}/chat/completions"))
            .bearer_auth(token)
            .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write a thank-you note"}]}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn from_an_empty_database_the_checklist_leads_to_a_first_request_through_the_consoles_own_gateway() {
    let f = fixture();
    let sim = f
        ._rt
        .block_on(Simulator::start(SimConfig {
            seed: 5,
            accounts: vec![SimAccountConfig::new("platform", ProviderKind::OpenAi, PLATFORM_KEY)],
        }))
        .unwrap();
    let (mut h, routing) = routing_harness(&f, None, "test");
    wait_until(&mut h, "the checklist", |h| shows(h, "Getting started · 0 of 5 done"));
    assert!(shows(&h, "Stopped: this console does not route"));
    assert!(shows(&h, "Switch on \"Route requests from this console\" below"));

    // 1. A platform key, validated against the simulator.
    nav(&mut h, "Keys");
    wait_until(&mut h, "the keys view", |h| h.query_by_label("Add key…").is_some());
    h.get_by_label("Add key…").click();
    h.step();
    type_into(&mut h, "Label", "WedSync OpenAI");
    type_into(&mut h, "Base URL", sim.base_url());
    type_into(&mut h, "API key", PLATFORM_KEY);
    h.get_by_label("Save key").click();
    wait_until(&mut h, "the platform key", |h| shows(h, "Added 'WedSync OpenAI'"));
    // 2. A supplier.
    nav(&mut h, "Suppliers");
    wait_until(&mut h, "the suppliers view", |h| shows(h, "No suppliers yet"));
    h.get_by_label("Add supplier").click();
    h.step();
    h.step();
    type_into(&mut h, "Name", "Capture Moments");
    h.step();
    button(&h, "Save").click();
    wait_until(&mut h, "the supplier", |h| shows(h, "Added 'Capture Moments'"));
    // 3. A gateway token, shown once.
    nav(&mut h, "Keys");
    wait_until(&mut h, "the token form", |h| h.query_by_label("Issue token").is_some());
    choose(&mut h, "Token for", "capture", "Capture Moments");
    h.get_by_label("Issue token").click();
    wait_until(&mut h, "the one-time dialog", |h| shows(h, "New gateway token for Capture Moments"));
    let token = shown_token(&h).expect("the token is shown once");
    button(&h, "Done").click();
    h.step();

    // 4. The switch, on the Overview's checklist.
    nav(&mut h, "Overview");
    wait_until(&mut h, "three steps done", |h| shows(h, "Getting started · 3 of 5 done"));
    assert!(shows(&h, "Waiting for the first request…"));
    let port = free_port();
    set_port(&mut h, port);
    switch(&h).click();
    h.step();
    let url = format!("http://127.0.0.1:{port}/v1");
    wait_until(&mut h, "routing", |h| shows(h, &format!("Routing at {url}")));
    assert_eq!(routing.url().as_deref(), Some(url.as_str()));
    wait_until(&mut h, "the gateway step", |h| shows(h, "Getting started · 4 of 5 done"));
    assert!(shows(&h, &format!("Routing: process {} on host {}", std::process::id(), host_name())));
    let holder = RoutingLock::holder(f.store.sqlite_path().unwrap()).unwrap().expect("the console holds the routing lock");
    assert_eq!((holder.pid, holder.program.as_str()), (std::process::id(), "the Switchboard console"));
    assert_eq!(h.state().view_settings().routing, switchboard::ui::views::routing::Persisted { on: true, port });

    // 5. A real request through the console's own gateway: the light turns green.
    let (status, body) = chat(&f, &url, &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"choices\""), "{body}");
    wait_until(&mut h, "the first request", |h| shows(h, "Getting started · 5 of 5 done") && shows(h, "First request received"));
    assert!(!shows(&h, "Waiting for the first request…"));
    wait_until(&mut h, "the live strip's request", |h| shows(h, "Capture Moments"));

    // Closing the window while it routes asks first; Cancel keeps everything.
    request_close(&mut h);
    assert!(cancelled_close(&h), "the close was cancelled to ask");
    wait_until(&mut h, "the close question", |h| shows(h, "This console is routing requests"));
    assert!(shows(&h, "Keep routing in the background"));
    button(&h, "Cancel").click();
    h.step();
    h.step();
    assert!(!shows(&h, "This console is routing requests") && h.state().close_choice().is_none());
    assert_eq!(chat(&f, &url, &token).0, 200, "still routing after Cancel");

    // "Stop routing and quit": the gateway and runtime stop, the ledger is flushed, the lock released, then the window closes.
    request_close(&mut h);
    wait_until(&mut h, "the close question again", |h| shows(h, "Stop routing and quit"));
    button(&h, "Stop routing and quit").click();
    wait_until(&mut h, "the window to close", |h| h.state().close_choice() == Some(CloseChoice::StopAndQuit));
    assert_eq!(routing.state(), RoutingState::Off);
    assert_eq!(RoutingLock::holder(f.store.sqlite_path().unwrap()).unwrap(), None, "the routing lock is released");
    let today = Utc::now().date_naive();
    let totals = f.store.usage_totals(today, today + chrono::Duration::days(1)).unwrap();
    assert_eq!(totals.requests, 2, "both requests are in the database once routing stopped");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the gateway no longer listens");
}

#[test]
fn the_switch_is_refused_while_serve_routes_the_database_and_a_killed_holder_is_detected() {
    let f = fixture();
    let serve_port = free_port();
    let mut serve = crate::support::sb(f.store.sqlite_path().unwrap())
        .args(["serve", "--listen", &format!("127.0.0.1:{serve_port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while RoutingLock::holder(f.store.sqlite_path().unwrap()).unwrap().is_none_or(|h| h.pid != serve.id()) {
        assert!(Instant::now() < deadline, "serve did not take the routing lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut h, routing) = routing_harness(&f, None, "test");
    wait_until(&mut h, "the checklist", |h| shows(h, "Route requests from this console"));
    assert!(shows(&h, &format!("Routing: process {} on host {} (switchboard serve", serve.id(), host_name())), "step 4 names serve");
    set_port(&mut h, free_port());
    switch(&h).click();
    h.step();
    let named = format!("process {} on host {} (switchboard serve", serve.id(), host_name());
    wait_until(&mut h, "the refusal", |h| shows(h, "Refused: another Switchboard runtime is routing") && shows(h, &named));
    assert!(matches!(routing.state(), RoutingState::Refused { .. }));
    assert_eq!(routing.url(), None, "the switch is not on");
    assert!(!shows(&h, "Routing at"));

    // serve is killed: its lock goes with it, and the next start names it as left behind.
    serve.kill().unwrap();
    serve.wait().unwrap();
    let port = free_port();
    set_port(&mut h, port);
    switch(&h).click();
    h.step();
    wait_until(&mut h, "routing", |h| shows(h, &format!("Routing at http://127.0.0.1:{port}/v1")));
    let left = format!("The previous runtime, process {} on host {}", serve.id(), host_name());
    assert!(shows(&h, &left) && shows(&h, "ended without stopping (killed or crashed)"), "the killed holder is reported");

    // Switched off by hand: stopped, the lock released, and remembered as off.
    switch(&h).click();
    h.step();
    wait_until(&mut h, "stopped", |h| shows(h, "Stopped: this console does not route"));
    assert_eq!(RoutingLock::holder(f.store.sqlite_path().unwrap()).unwrap(), None);
    assert!(!h.state().view_settings().routing.on);
    // Not routing: the window closes without asking.
    request_close(&mut h);
    assert!(!cancelled_close(&h) && !shows(&h, "This console is routing requests"));
}

#[test]
fn serve_and_a_second_console_refuse_while_it_routes_the_switch_is_remembered_and_keep_routing_closes_the_window_only() {
    let f = fixture();
    let (mut h, routing) = routing_harness(&f, None, "test");
    wait_until(&mut h, "the switch", |h| shows(h, "Route requests from this console"));
    let port = free_port();
    set_port(&mut h, port);
    switch(&h).click();
    h.step();
    wait_until(&mut h, "routing", |h| shows(h, &format!("Routing at http://127.0.0.1:{port}/v1")));

    // While it routes, `serve` and a second console refuse, naming this one.
    let me = format!("process {} on host {} (the Switchboard console", std::process::id(), host_name());
    let out = crate::support::sb(f.store.sqlite_path().unwrap())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("another Switchboard runtime is routing") && err.contains(&me), "{err}");
    let (mut other, other_routing) = routing_harness(&f, None, "test");
    wait_until(&mut other, "the second console's switch", |h| shows(h, "Route requests from this console"));
    set_port(&mut other, free_port());
    switch(&other).click();
    other.step();
    wait_until(&mut other, "the second console's refusal", |h| {
        shows(h, "Refused: another Switchboard runtime is routing") && shows(h, &me)
    });
    assert!(matches!(other_routing.state(), RoutingState::Refused { .. }));
    drop(other);

    // "Keep routing in the background": the window may close; the runtime keeps routing.
    request_close(&mut h);
    wait_until(&mut h, "the close question", |h| shows(h, "Keep routing in the background"));
    button(&h, "Keep routing in the background").click();
    h.step();
    assert_eq!(h.state().close_choice(), Some(CloseChoice::KeepInBackground));
    assert!(routing.url().is_some(), "still routing after the window closed");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the gateway still listens");
    let mut storage = MemStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    drop(h);
    // What `run_console` does on the stop signal.
    f._rt.block_on(routing.stop());
    assert_eq!(RoutingLock::holder(f.store.sqlite_path().unwrap()).unwrap(), None);

    // The same database opens routing again, on the remembered port.
    let (mut h, routing) = routing_harness(&f, Some(&storage), "test");
    wait_until(&mut h, "routing resumed", |h| shows(h, &format!("Routing at http://127.0.0.1:{port}/v1")));
    f._rt.block_on(routing.stop());
    drop(h);
    // Another database's settings are its own: it does not route.
    let (mut h, routing) = routing_harness(&f, Some(&storage), "another.db");
    wait_until(&mut h, "the switch", |h| shows(h, "Stopped: this console does not route"));
    for _ in 0..10 {
        h.step();
    }
    assert_eq!(routing.state(), RoutingState::Off);
}

#[test]
fn a_taken_port_fails_clearly_and_leaves_the_database_free_to_route() {
    let f = fixture();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (mut h, routing) = routing_harness(&f, None, "test");
    wait_until(&mut h, "the switch", |h| shows(h, "Route requests from this console"));
    set_port(&mut h, port);
    switch(&h).click();
    h.step();
    wait_until(&mut h, "the failure", |h| shows(h, &format!("the gateway could not start on 127.0.0.1:{port}")));
    assert!(shows(&h, "type another port and switch routing on again"));
    assert!(matches!(routing.state(), RoutingState::Failed { .. }));
    assert_eq!(RoutingLock::holder(f.store.sqlite_path().unwrap()).unwrap(), None, "the runtime stopped and released the lock");
    // Typing a port that is typed wrong is refused in place.
    set_port(&mut h, 0);
    switch(&h).click();
    h.step();
    assert!(shows(&h, "'0' is not a port; type a number from 1 to 65535"));
    drop(taken);
}
