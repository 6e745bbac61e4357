//! Session storage housekeeping against real sled files.

use std::time::Duration;

use agora::services::account::{AccountService, Registration};
use agora::storage::{Store, StoreOptions};

#[tokio::test]
async fn expired_sessions_are_swept_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let short = AccountService::new(store.clone(), 1).await.unwrap();
    let long = AccountService::new(store.clone(), 3600).await.unwrap();
    let registration = Registration {
        email: Some("sweep@example.com".into()),
        password: Some("correct horse".into()),
        name: Some("Sweep".into()),
        role: None,
    };
    short.register(registration).await.unwrap();
    let expiring = short
        .sign_in("sweep@example.com", "correct horse".into())
        .await
        .unwrap();
    let lasting = long
        .sign_in("sweep@example.com", "correct horse".into())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    assert_eq!(long.remove_expired_sessions().await.unwrap(), 1);
    assert_eq!(long.remove_expired_sessions().await.unwrap(), 0);
    assert!(long.authenticate(&expiring.token).await.unwrap().is_none());
    assert!(long.authenticate(&lasting.token).await.unwrap().is_some());
}
