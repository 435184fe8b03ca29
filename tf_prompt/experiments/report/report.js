(function(){
var rows=Array.prototype.slice.call(document.querySelectorAll('#sents>.s'));
var boxes=Array.prototype.slice.call(document.querySelectorAll('#bar input[type=checkbox]'));
var q=document.getElementById('q'),shown=document.getElementById('shown'),hay=null;
function kinds(){return boxes.filter(function(b){return b.checked}).map(function(b){return b.value})}
function apply(){
 var ks=kinds(),term=q.value.trim().toLowerCase(),n=0;
 if(term&&!hay){hay=rows.map(function(r){return r.textContent.toLowerCase()})}
 for(var i=0;i<rows.length;i++){
  var r=rows[i],mine=' '+r.getAttribute('data-k')+' ',ok=!ks.length;
  for(var j=0;j<ks.length&&!ok;j++){if(mine.indexOf(' '+ks[j]+' ')>=0)ok=true}
  if(ok&&term)ok=hay[i].indexOf(term)>=0;
  if(r.hidden===ok)r.hidden=!ok;
  if(ok)n++;
 }
 shown.textContent='showing '+n+' of '+rows.length;
}
function save(){
 var parts=[],ks=kinds();
 if(ks.length)parts.push('filter='+ks.join(','));
 if(q.value)parts.push('q='+encodeURIComponent(q.value));
 try{history.replaceState(null,'',parts.length?'#'+parts.join('&'):location.pathname+location.search)}catch(e){}
}
function load(){
 var h=location.hash.replace(/^#/,''),want=[],term='';
 h.split('&').forEach(function(p){
  var kv=p.split('=');
  if(kv[0]==='filter'&&kv[1])want=decodeURIComponent(kv[1]).split(',');
  if(kv[0]==='q'&&kv[1])term=decodeURIComponent(kv[1]);
 });
 boxes.forEach(function(b){b.checked=want.indexOf(b.value)>=0});
 q.value=term;apply();
}
boxes.forEach(function(b){b.addEventListener('change',function(){apply();save()})});
var timer=null;
q.addEventListener('input',function(){clearTimeout(timer);timer=setTimeout(function(){apply();save()},120)});
document.getElementById('clear').addEventListener('click',function(){
 boxes.forEach(function(b){b.checked=false});q.value='';apply();save()});
window.addEventListener('hashchange',load);
load();
})();
