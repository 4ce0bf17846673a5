//! The event loop: one `tokio::select!` over terminal input, engine events, signals,
//! cancellation, a 1 s clock tick and the frame timer. The loop owns the [`App`]
//! (nobody else touches it: no `Arc<Mutex<App>>`); it redraws only after a change, at
//! most [`FPS`] times a second, and drains every queued engine event before drawing.
//!
//! Terminal input: ratatui re-exports crossterm but not its `event-stream` feature, and
//! the crate must not depend on a second crossterm, so a dedicated thread blocks in
//! `crossterm::event::poll`/`read` and forwards events over a channel. Its poll timeout
//! (100 ms) only bounds how long the thread takes to notice that the TUI quit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event, MouseButton, MouseEventKind};
use ratatui::Terminal;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::action::{Action, Effect};
use super::app::{App, TuiOptions};
use super::keys;
use super::terminal::{self, TerminalGuard};
use super::theme::{fallback, honour_no_color, Theme};
use super::update::update;
use super::view::render;
use crate::engine::{EngineHandle, EngineRequest};
use crate::plan::Plan;

/// Frame cap.
pub const FPS: u64 = 30;
const FRAME: Duration = Duration::from_millis(1000 / FPS);
/// Most engine events applied before the loop looks at the keyboard again.
pub const MAX_BATCH: usize = 50_000;

/// A signal the loop reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopSignal {
    /// SIGTERM / SIGHUP: restore the terminal and leave (the state lives in the cluster).
    Terminate,
    /// SIGINT from outside (Ctrl-C itself arrives as a key in raw mode).
    Interrupt,
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Quit,
    Terminated,
    Cancelled,
}

/// Runs the TUI until the operator quits, a SIGTERM arrives or `cancel` fires.
///
/// `plan` must be valid; `engine` is the engine's end of the channels (the TUI sends
/// [`EngineRequest`]s and shows [`crate::engine::EngineEvent`]s); `theme` is the theme
/// already resolved (`NO_COLOR` applied, see [`super::theme::honour_no_color`]).
pub async fn run(
    opts: TuiOptions,
    plan: Plan,
    engine: EngineHandle,
    theme: Theme,
) -> anyhow::Result<()> {
    run_with_cancel(opts, plan, engine, theme, CancellationToken::new()).await
}

/// [`run`] with a cancellation token (the caller's shutdown).
pub async fn run_with_cancel(
    opts: TuiOptions,
    plan: Plan,
    engine: EngineHandle,
    theme: Theme,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::new().context("cannot set up the terminal")?;
    let size = guard.terminal.size()?;
    let mut app = App::new(&plan, opts, theme, now_ms());
    update(&mut app, Action::Resize(size.width, size.height));
    tracing::info!(plan = %app.session().plan_name, theme = app.theme().origin(), "tui started");

    let (term_tx, mut term_rx) = mpsc::channel(1024);
    let reader = InputReader::spawn(term_tx)?;
    let (sig_tx, mut sig_rx) = mpsc::channel(4);
    let signals = spawn_signal_listener(sig_tx, cancel.clone());

    let result = drive(
        &mut guard.terminal,
        &mut app,
        engine,
        &mut term_rx,
        &mut sig_rx,
        cancel,
        &mut terminal::suspend,
    )
    .await;
    signals.abort();
    reader.stop();
    drop(guard);
    let exit = result?;
    tracing::info!(?exit, "tui stopped");
    if exit == Exit::Terminated {
        eprintln!("wavelift: terminated; the migration state lives in the cluster, run `wavelift tui {}` to resume", app.session().plan_path);
    }
    Ok(())
}

/// The loop itself, over any ratatui backend (tests drive it with `TestBackend`).
/// `suspend` is called for Ctrl-Z.
pub async fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    engine: EngineHandle,
    term_events: &mut mpsc::Receiver<Event>,
    signals: &mut mpsc::Receiver<LoopSignal>,
    cancel: CancellationToken,
    suspend: &mut dyn FnMut(&mut Terminal<B>) -> std::io::Result<()>,
) -> anyhow::Result<Exit>
where
    B::Error: Send + Sync + 'static,
{
    let EngineHandle {
        events: mut engine_events,
        requests,
    } = engine;
    let mut engine_open = true;
    let mut terminal_open = true;
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(MissedTickBehavior::Skip);

    loop {
        let due = last_draw.map(|t| t + FRAME);
        if dirty && due.is_none_or(|d| Instant::now() >= d) {
            app.settle();
            terminal.draw(|f| render(app, f))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let next_frame = due.unwrap_or_else(Instant::now);
        // Terminal events are mapped to actions one at a time, against the state the
        // previous one left (a `y` typed after `w` answers the dialog `w` opened).
        let mut inputs: Vec<Input> = Vec::new();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(Exit::Cancelled),
            Some(sig) = signals.recv() => match sig {
                LoopSignal::Terminate => {
                    let _ = requests.try_send(EngineRequest::Shutdown);
                    return Ok(Exit::Terminated);
                }
                LoopSignal::Interrupt => inputs.push(Input::Action(Action::Interrupt)),
            },
            ev = term_events.recv(), if terminal_open => match ev {
                Some(ev) => {
                    inputs.push(Input::Terminal(ev));
                    // Take every queued key at once (paste, key repeat).
                    while let Ok(ev) = term_events.try_recv() {
                        inputs.push(Input::Terminal(ev));
                    }
                }
                None => terminal_open = false,
            },
            ev = engine_events.recv(), if engine_open => match ev {
                Some(ev) => {
                    app.apply_event(ev);
                    let mut n = 1;
                    while n < MAX_BATCH {
                        match engine_events.try_recv() {
                            Ok(ev) => app.apply_event(ev),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    dirty = true;
                }
                None => {
                    engine_open = false;
                    inputs.push(Input::Action(Action::EngineGone));
                }
            },
            _ = clock.tick() => inputs.push(Input::Action(Action::Tick(now_ms()))),
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
        }
        for input in inputs {
            let action = match input {
                Input::Action(a) => a,
                Input::Terminal(ev) => match terminal_action(app, ev) {
                    Some(a) => a,
                    None => continue,
                },
            };
            dirty = true;
            let effects = update(app, action);
            for effect in effects {
                match effect {
                    Effect::Quit => {
                        // Give the engine a moment to take the Shutdown request.
                        return Ok(Exit::Quit);
                    }
                    Effect::Engine(req) => send_request(&requests, req),
                    Effect::Suspend => {
                        suspend(terminal)?;
                        last_draw = None;
                    }
                    Effect::ExportReport { path, contents } => {
                        if let Err(e) = std::fs::write(&path, contents) {
                            app.ui_mut().flash = Some(format!("cannot write {path}: {e}"));
                            tracing::warn!(%path, error = %e, "report export failed");
                        } else {
                            tracing::info!(%path, "report exported");
                        }
                    }
                    Effect::LoadTheme(path) => {
                        let (theme, warning) = fallback(Theme::load(&path));
                        let action = match warning {
                            Some(w) => Action::ThemeFailed(w),
                            None => Action::ThemeLoaded(Box::new(honour_no_color(
                                theme,
                                app.session().no_color.then_some("1"),
                            ))),
                        };
                        update(app, action);
                    }
                }
            }
        }
    }
}

enum Input {
    Terminal(Event),
    Action(Action),
}

/// Maps a terminal event to an action.
fn terminal_action(app: &App, ev: Event) -> Option<Action> {
    match ev {
        Event::Key(k) => keys::action_for(app, k),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::Down(MouseButton::Left) => Some(Action::Click {
                column: m.column,
                row: m.row,
            }),
            MouseEventKind::ScrollUp => Some(Action::ScrollUp),
            MouseEventKind::ScrollDown => Some(Action::ScrollDown),
            _ => None,
        },
        Event::Resize(w, h) => Some(Action::Resize(w, h)),
        _ => None,
    }
}

/// Sends a request without blocking the loop (a full channel hands it to a task).
fn send_request(tx: &mpsc::Sender<EngineRequest>, req: EngineRequest) {
    tracing::info!(?req, "operator request");
    match tx.try_send(req) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(req)) => {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(req).await;
            });
        }
        Err(mpsc::error::TrySendError::Closed(req)) => {
            tracing::warn!(?req, "engine gone: request dropped");
        }
    }
}

/// Wall clock in unix milliseconds (read by the loop only; render gets it in the App).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// SIGTERM/SIGHUP → Terminate, SIGINT → Interrupt.
fn spawn_signal_listener(
    tx: mpsc::Sender<LoopSignal>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot listen for signals");
                return;
            };
            loop {
                let sig = tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = term.recv() => LoopSignal::Terminate,
                    _ = hup.recv() => LoopSignal::Terminate,
                    _ = int.recv() => LoopSignal::Interrupt,
                };
                if tx.send(sig).await.is_err() {
                    return;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (tx, cancel);
        }
    })
}

/// The thread that reads terminal events (see the module docs).
struct InputReader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl InputReader {
    fn spawn(tx: mpsc::Sender<Event>) -> std::io::Result<InputReader> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("wavelift-input".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match event::poll(Duration::from_millis(100)) {
                        Ok(true) => match event::read() {
                            Ok(ev) => {
                                if tx.blocking_send(ev).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "terminal read failed");
                                return;
                            }
                        },
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "terminal poll failed");
                            return;
                        }
                    }
                }
            })?;
        Ok(InputReader {
            stop,
            handle: Some(handle),
        })
    }

    /// Asks the thread to stop and waits for it briefly. A thread stuck in crossterm's
    /// `poll` on a terminal that hung up (it spins there) is left behind rather than
    /// waited for: the process exits anyway, and it must not hang on a dead terminal.
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let deadline = Instant::now() + Duration::from_millis(300);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                tracing::warn!(
                    "the terminal input thread did not stop (terminal gone?); leaving it"
                );
            }
        }
    }
}
