package broker

import (
	"net/http"

	"gearbox/broker/api"
	"gearbox/store/state"
)

// The alert feed: what went wrong in the cluster and what the broker
// leader did about it (a node failed, its gears were replaced, an app is
// short of gears, a gear crashes in a loop, the autoscaler acted or could
// not). It is a feed like the routing events' (feed.go): sequenced,
// paged with after=, followed with follow=1, delivered to webhooks
// created with feed=alerts, never collected. Each alert is also logged
// by the leader that raised it, at warn level.

// GET /broker/rest/alerts?after=SEQ&limit=N[&follow=1]: the alerts after
// SEQ. Administrators see every alert; other users those about the apps
// of their own domains.
func (b *Broker) listAlerts(w http.ResponseWriter, r *http.Request, u *state.User, p params) error {
	var visible func(feedItem) bool
	if !u.Admin {
		visible = func(it feedItem) bool {
			if it.Namespace == "" {
				return false
			}
			_, err := b.domain(u, it.Namespace)
			return err == nil
		}
	}
	return b.serveFeed(w, r, p, b.alertFeed(), "alerts", visible)
}

// alertView is alert a as the API (the feed and webhook deliveries)
// shows it.
func alertView(a *state.Alert) api.Alert {
	return api.Alert{Seq: a.Seq, Kind: a.Kind, AppName: a.AppName, Namespace: a.Namespace, Node: a.Node, Gear: a.Gear,
		Reason: a.Reason, Action: a.Action, Log: a.Log, Time: a.Time}
}
